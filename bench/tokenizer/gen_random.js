#!/usr/bin/env node
// Writes N lines {"text": ...} of random valid Unicode text that exercises every rule of the
// pre-tokenizer regexes (contractions in any case, letters/numbers/marks/symbols of many
// scripts, whitespace runs with CR/LF and Unicode spaces, emoji, combining marks, special
// tokens). compare.sh encodes it with both tokenizers to check that the ids agree.
//
// usage: node gen_random.js N SEED > random.jsonl
'use strict';
const n = parseInt(process.argv[2] || '2000', 10);
let seed = parseInt(process.argv[3] || '1', 10) >>> 0;
function rand() {  // mulberry32
  seed = (seed + 0x6D2B79F5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const fragments = [
  'a', 'Z', 'the', ' word', "I'LL", "'s", "'S", "'ve", "'RE", "don't", "'x", "'", '\u017f', "'\u017f",
  '1', '42', '2024', ' 3.14', '1,000', 'x^2', '\\frac{1}{2}', '$\\boxed{5}$', '<<48/2=24>>',
  ' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', '\r', ' \r\n ', '\t\n', '\u00a0', '\u3000', '\u2028',
  '\u2029', '\u0085', '\u200b', '\u180e', '\u1680', '\u202f', '\u000b', '\u000c', '\u001c',
  '$', '!!', '?', '...', '--', '__', '#', '@', '\u2211', '\u221a', '\u2260', '\u00b2', '\u2167', '\u00bd',
  '\u6570\u5b66', '\u63a8\u7406', '\u3002', '\u3001', '\u30ab\u30bf\u30ab\u30ca', '\u304c', '\u304b\u3099',
  '\ud83d\ude42', '\ud83d\ude80\ud83d\ude80', '\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67', '\u2764\ufe0f',
  '\u00e9', 'e\u0301', 'a\u0308\u0301', 'o\u0323\u0302', '\u212b', '\u2126', '\u03a9', '\u00f1', 'n\u0303',
  '\ud55c\uad6d\uc5b4', '\u1100\u1161', '\u1100\u1161\u11a8', '\u0627\u0644\u0639\u0631\u0628\u064a\u0629',
  '\u092e\u093e\u0924\u094d\u0930\u093e', '\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22', '\u0416\u0438\u0437\u043d\u044c',
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>', '<|im_', '<tool_call>',
  '\u0001', '\u007f', '\u200d', '\ufeff', '\ufffd', '\u{10FFFD}', '\u{1D400}', '\u{1D7CE}', '\u{20000}',
];
const ranges = [[0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0x97f],
  [0x1100, 0x11ff], [0x2000, 0x206f], [0x2070, 0x218f], [0x2190, 0x2bff], [0x3000, 0x30ff], [0x4e00, 0x9fff],
  [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfb00, 0xfdff], [0xfe00, 0xffef], [0x1f300, 0x1faff], [0x1d400, 0x1d7ff]];
const lines = [];
for (let i = 0; i < n; i++) {
  let s = '';
  const k = Math.floor(rand() * 40);
  for (let j = 0; j < k; j++) {
    if (rand() < 0.25) {
      const [lo, hi] = pick(ranges);
      s += String.fromCodePoint(lo + Math.floor(rand() * (hi - lo + 1)));
    } else {
      s += pick(fragments);
    }
  }
  lines.push(JSON.stringify({ text: s }));
}
process.stdout.write(lines.join('\n') + '\n');
