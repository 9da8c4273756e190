#!/usr/bin/env node
// HF tokenizers side of the tokenizer benchmark (bench/tokenizer/compare.sh runs it).
//
// usage: node hf_bench.js --tokenizer tokenizer.json --data IN.jsonl [--repeats N]
//                         [--ids-out FILE] [--mode batch|per-call]
//
// Same corpus as tokenizer_bench: one text per line, the "text" field or else
// question + "\n" + answer. HF tokenizers 0.22 (Rust) through the @anush008/tokenizers Node
// binding, add_special_tokens = false.
//   --mode batch     one encodeBatch() call per pass over the corpus (default). HF runs batches
//                    on a Rayon pool: run with RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
//                    for one thread (compare.sh does; cpu_over_wall in the output checks it).
//   --mode per-call  one awaited encode() per text: includes the binding's per-call cost (each
//                    call is an async task on libuv's thread pool).
// One untimed warm-up pass, then --repeats timed passes (default 5); the median is reported.
// Prints one JSON object like tokenizer_bench; --ids-out writes one line of ids per text.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('@anush008/tokenizers');

function parseArgs(argv) {
  const a = { repeats: 5, mode: 'batch' };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unexpected argument ${argv[i]}`);
    a[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
  }
  if (!a.tokenizer || !a.data) throw new Error('need --tokenizer and --data');
  if (a.mode !== 'batch' && a.mode !== 'per-call') throw new Error(`bad --mode ${a.mode}`);
  a.repeats = Math.max(1, parseInt(a.repeats, 10));
  return a;
}

function readTexts(path) {
  return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => {
    const j = JSON.parse(l);
    return typeof j.text === 'string' ? j.text : `${j.question}\n${j.answer}`;
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const tok = Tokenizer.fromFile(args.tokenizer);
  const texts = readTexts(args.data);
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  const opts = { addSpecialTokens: false };

  const pass = async () => {
    const t0 = process.hrtime.bigint();
    let encodings;
    if (args.mode === 'batch') {
      encodings = await tok.encodeBatch(texts, opts);
    } else {
      encodings = [];
      for (const t of texts) encodings.push(await tok.encode(t, null, opts));
    }
    return [Number(process.hrtime.bigint() - t0) / 1e9, encodings];
  };

  let [cold, encodings] = await pass();
  const times = [];
  const cpu0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  for (let r = 0; r < args.repeats; r++) {
    const [dt, e] = await pass();
    times.push(dt);
    encodings = e;
  }
  const cpu = process.cpuUsage(cpu0);
  const wall = Number(process.hrtime.bigint() - wall0) / 1e9;
  times.sort((x, y) => x - y);
  const median = times[Math.floor(times.length / 2)];
  const ids = encodings.map((e) => e.getIds());
  const tokens = ids.reduce((n, v) => n + v.length, 0);
  if (args['ids-out']) fs.writeFileSync(args['ids-out'], ids.map((v) => v.join(' ')).join('\n') + '\n');
  console.log(JSON.stringify({
    impl: `hf-tokenizers (${args.mode})`,
    lines: texts.length,
    bytes,
    tokens,
    cold_seconds: cold,
    median_seconds: median,
    best_seconds: times[0],
    bytes_per_s: bytes / median,
    tokens_per_s: tokens / median,
    cpu_over_wall: (cpu.user + cpu.system) / 1e6 / wall,
    rayon_num_threads: process.env.RAYON_NUM_THREADS || null,
    tokenizers_parallelism: process.env.TOKENIZERS_PARALLELISM || null,
  }));
}

main().catch((e) => {
  console.error(`hf_bench: ${e.message}`);
  process.exit(2);
});
