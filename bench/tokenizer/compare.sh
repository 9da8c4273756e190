#!/usr/bin/env bash
# Encode throughput of swarr::Tokenizer against HF tokenizers (Rust, through the
# @anush008/tokenizers Node binding), one thread each, on the same corpus with the Qwen2
# tokenizer fixture; checks that both give the same ids for every line; prints a Markdown table.
#
# usage: bench/tokenizer/compare.sh [path/to/tokenizer_bench]    (default build/bin/tokenizer_bench)
# env:   TOKENIZER (default ../shared/fixtures/tokenizer/qwen2/tokenizer.json)
#        DATA      (default ../shared/data/gsm8k/train.jsonl; text = question + "\n" + answer)
#        REPEATS   (timed passes, default 5; the median is reported)
#        RANDOM_LINES (lines of random Unicode text also checked for equal ids, default 20000; 0 = skip)
#
# Builds nothing. Installs the npm package into bench/tokenizer/node_modules (npm ci, from
# package-lock.json) if it is missing. HF runs with RAYON_NUM_THREADS=1 and
# TOKENIZERS_PARALLELISM=false; the table's cpu/wall column shows the threads each side used.
# Exit status: 0, or 1 if any line's ids differ.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bench="${1:-$root/build/bin/tokenizer_bench}"
tokenizer="${TOKENIZER:-$root/../shared/fixtures/tokenizer/qwen2/tokenizer.json}"
data="${DATA:-$root/../shared/data/gsm8k/train.jsonl}"
repeats="${REPEATS:-5}"
random_lines="${RANDOM_LINES:-20000}"

if [[ ! -x "$bench" ]]; then
  echo "compare.sh: no tokenizer_bench at $bench (build it: ninja -C build tokenizer_bench)" >&2
  exit 2
fi
if [[ ! -d "$here/node_modules/@anush008/tokenizers" ]]; then
  echo "compare.sh: installing @anush008/tokenizers into $here/node_modules" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false

# Lines whose ids differ between two files of one id line per text.
mismatches() { awk 'NR == FNR { a[FNR] = $0; n = FNR; next } a[FNR] != $0 { c++ } END { if (FNR != n) c += (FNR > n ? FNR - n : n - FNR); print c + 0 }' "$1" "$2"; }

echo "compare.sh: timing swarr on $data" >&2
"$bench" --tokenizer "$tokenizer" --data "$data" --repeats "$repeats" --ids-out "$tmp/swarr.ids" >"$tmp/swarr.json"
echo "compare.sh: timing HF tokenizers (encodeBatch, 1 thread)" >&2
node "$here/hf_bench.js" --tokenizer "$tokenizer" --data "$data" --repeats "$repeats" --mode batch \
  --ids-out "$tmp/hf.ids" >"$tmp/hf_batch.json"
echo "compare.sh: timing HF tokenizers (one encode() call per line)" >&2
node "$here/hf_bench.js" --tokenizer "$tokenizer" --data "$data" --repeats "$repeats" --mode per-call \
  >"$tmp/hf_call.json"
corpus_bad="$(mismatches "$tmp/swarr.ids" "$tmp/hf.ids")"

random_bad="skipped"
if [[ "$random_lines" -gt 0 ]]; then
  echo "compare.sh: checking ids on $random_lines lines of random Unicode text" >&2
  node "$here/gen_random.js" "$random_lines" 1 >"$tmp/random.jsonl"
  "$bench" --tokenizer "$tokenizer" --data "$tmp/random.jsonl" --repeats 1 --ids-out "$tmp/swarr_r.ids" >/dev/null
  node "$here/hf_bench.js" --tokenizer "$tokenizer" --data "$tmp/random.jsonl" --repeats 1 \
    --ids-out "$tmp/hf_r.ids" >/dev/null
  random_bad="$(mismatches "$tmp/swarr_r.ids" "$tmp/hf_r.ids")"
fi

node - "$tmp/swarr.json" "$tmp/hf_batch.json" "$tmp/hf_call.json" "$corpus_bad" "$random_bad" "$random_lines" \
  "$data" "$repeats" <<'JS'
const fs = require('fs');
const os = require('os');
const [swarrPath, batchPath, callPath, corpusBad, randomBad, randomLines, data, repeats] = process.argv.slice(2);
const rows = [swarrPath, batchPath, callPath].map((p) => JSON.parse(fs.readFileSync(p, 'utf8')));
const base = rows[1];  // HF encodeBatch, one thread: the Rust library's own speed
const mb = (x) => (x / 1e6).toFixed(2);
console.log(`Corpus: ${data} (${rows[0].lines} texts, ${rows[0].bytes} bytes, ${rows[0].tokens} tokens); ` +
            `median of ${repeats} warm passes; ${os.cpus().length} CPUs (${os.cpus()[0].model}), ` +
            `${new Date().toISOString().slice(0, 10)}`);
console.log('');
console.log('| implementation | MB/s | Mtokens/s | median s | cold pass s | cpu/wall | speed vs HF batch |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.impl} | ${mb(r.bytes_per_s)} | ${mb(r.tokens_per_s)} | ${r.median_seconds.toFixed(3)} | ` +
              `${r.cold_seconds.toFixed(3)} | ${r.cpu_over_wall.toFixed(2)} | ` +
              `${(r.bytes_per_s / base.bytes_per_s).toFixed(2)}x |`);
}
console.log('');
console.log(`Lines with different ids: corpus ${corpusBad} of ${rows[0].lines}; ` +
            `random Unicode text ${randomBad}${randomBad === 'skipped' ? '' : ` of ${randomLines}`}.`);
if (rows[0].tokens !== rows[1].tokens) console.log(`Token counts differ: ${rows[0].tokens} vs ${rows[1].tokens}.`);
JS

[[ "$corpus_bad" == "0" && ( "$random_bad" == "0" || "$random_bad" == "skipped" ) ]]
