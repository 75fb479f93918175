#!/usr/bin/env node
// Tokens/s through the Node package next to the Rust CLI on the same model.
//
//   node bench/node_vs_rust.js [MODEL] [--runs N] [--max-tokens N] [--cli PATH]
//
// Run alternately (Node, Rust, Node, ...) so machine noise hits both, as bench/python_vs_rust.py:
//   engine:   model.bench() (llama-bench's pp512/tg128) vs `uml bench --json`
//   generate: greedy, 128 tokens, on the already-loaded model of this process vs `uml run --json`
//             (usage = usage.generationTokensPerSecond; end to end = tokens / wall-clock time
//             of the Node call, prompt + generation + binding, against tokens / (prompt_ms +
//             generation_ms) inside the Rust CLI); stream = the same through `for await`.
// The target is Node >= 0.98 x Rust. Columns: medians, the median of per-round ratios, and
// best-of-rounds rates and their ratio. Needs the addon built (scripts/test-node or
// `node bindings/node/scripts/build-addon.js`) and the CLI (`cargo build --release -p uml-cli`).
'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const uml = require('../bindings/node')

const REPO = path.resolve(__dirname, '..')
const PROMPT = 'Once upon a time, in a small village by the sea,'

function args() {
  const out = { model: path.join(REPO, 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf'), runs: 5, maxTokens: 128, cli: undefined }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') out.runs = Number(argv[++i])
    else if (argv[i] === '--max-tokens') out.maxTokens = Number(argv[++i])
    else if (argv[i] === '--cli') out.cli = argv[++i]
    else out.model = argv[i]
  }
  const target = process.env.CARGO_TARGET_DIR ?? path.join(REPO, 'target')
  out.cli = [out.cli, process.env.UML_CLI, path.join(target, 'release', 'uml')].find((c) => c && fs.existsSync(c))
  if (!out.cli) throw new Error('uml CLI not found: cargo build --release -p uml-cli, or pass --cli PATH')
  return out
}

const runJson = (cmd, argv) => JSON.parse(execFileSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20 }))
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function main() {
  const opt = args()
  const threads = uml.hardware().physicalCores
  const node = { pp512: [], tg128: [], gen: [], genWall: [], streamWall: [] }
  const rust = { pp512: [], tg128: [], gen: [], genTotal: [] }
  const model = await uml.Loader.load(opt.model, { nThreads: threads })
  try {
    for (let round = 0; round < opt.runs; round++) {
      const report = await model.bench({ nPrompt: 512, nGen: 128, repetitions: 1 })
      for (const t of report.tests) node[t.test].push(t.median)
      const cliReport = runJson(opt.cli, ['bench', opt.model, '-p', '512', '-n', '128', '-r', '1', '-t', String(threads), '--quiet', '--json'])
      for (const t of cliReport.tests) rust[t.test].push(t.median)

      let start = performance.now()
      const out = await model.generate(PROMPT, { maxTokens: opt.maxTokens, temperature: 0 })
      let wall = (performance.now() - start) / 1000
      node.gen.push(out.usage.generationTokensPerSecond)
      node.genWall.push(out.usage.completionTokens / wall)
      start = performance.now()
      const stream = model.stream(PROMPT, { maxTokens: opt.maxTokens, temperature: 0 })
      let text = ''
      for await (const piece of stream) text += piece
      wall = (performance.now() - start) / 1000
      if (text !== out.text) throw new Error('streamed and generated greedy texts differ')
      node.streamWall.push(stream.completion.usage.completionTokens / wall)

      const cli = runJson(opt.cli, ['run', opt.model, PROMPT, '--temperature', '0', '--max-tokens', String(opt.maxTokens), '-t', String(threads), '--quiet', '--json'])
      rust.gen.push(cli.usage.generation_tokens_per_second)
      rust.genTotal.push((cli.usage.completion_tokens * 1000) / (cli.usage.prompt_ms + cli.usage.generation_ms))
      if (cli.text !== out.text) console.error('warning: Node and Rust greedy outputs differ')
      console.error(JSON.stringify({ round, node: Object.fromEntries(Object.entries(node).map(([k, v]) => [k, v.at(-1)])), rust: Object.fromEntries(Object.entries(rust).map(([k, v]) => [k, v.at(-1)])) }))
    }
  } finally {
    await model.close()
  }
  console.log(`model: ${opt.model}`)
  console.log(`threads: ${threads}, runs: ${opt.runs} (medians), uml ${uml.version}, node ${process.version}`)
  console.log(`${'test'.padEnd(40)} ${'node t/s'.padStart(9)} ${'rust t/s'.padStart(9)} ${'ratio'.padStart(6)} ${'best nd'.padStart(8)} ${'best rs'.padStart(8)} ${'ratio'.padStart(6)}  per-round ratios`)
  const rows = [
    ['engine pp512 (model.bench / uml bench)', 'pp512', 'pp512'],
    ['engine tg128 (model.bench / uml bench)', 'tg128', 'tg128'],
    [`warm, generate ${opt.maxTokens} tok (usage)`, 'gen', 'gen'],
    [`warm, generate ${opt.maxTokens} tok (end to end)`, 'genWall', 'genTotal'],
    [`warm, stream ${opt.maxTokens} tok (end to end)`, 'streamWall', 'genTotal'],
  ]
  for (const [name, nk, rk] of rows) {
    const ratios = node[nk].map((x, i) => x / rust[rk][i])
    const [bn, br] = [Math.max(...node[nk]), Math.max(...rust[rk])]
    console.log(
      `${name.padEnd(40)} ${median(node[nk]).toFixed(1).padStart(9)} ${median(rust[rk]).toFixed(1).padStart(9)} ` +
        `${median(ratios).toFixed(3).padStart(6)} ${bn.toFixed(1).padStart(8)} ${br.toFixed(1).padStart(8)} ${(bn / br).toFixed(3).padStart(6)}  ` +
        ratios.map((r) => r.toFixed(2)).join(' '),
    )
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
