// Shared by the tests: the real models (fetched once by scripts/fetch-models) and the greedy
// reference completions recorded from llama.cpp's own llama-simple.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const assert = require('node:assert/strict')

const REPO = path.resolve(__dirname, '..', '..', '..')
const SMOLLM2 = 'SmolLM2-135M-Instruct.Q4_1.gguf'
const MINILM = 'all-MiniLM-L6-v2.F32.gguf'

/** A real model from $UML_MODELS or <repo>/models; fails (not skips) when it is missing. */
function modelPath(name = SMOLLM2) {
  const folders = [process.env.UML_MODELS, path.join(REPO, 'models')].filter(Boolean)
  for (const folder of folders) {
    const file = path.join(folder, name)
    if (fs.existsSync(file)) return file
  }
  assert.fail(`${name} not found in ${folders.join(', ')}; fetch it with: scripts/fetch-models`)
}

/** A recorded fixture; greedy ones are re-checked like the Python and Rust tests do: only the
 * prefix before the first CPU-path disagreement or near-tie holds on every x86-64 CPU. */
function fixture(name) {
  const data = JSON.parse(fs.readFileSync(path.join(REPO, 'tests', 'fixtures', name), 'utf8'))
  if (data.tokens !== undefined) {
    let text = ''
    let trusted = 0
    for (const token of data.tokens) {
      const margins = Object.values(token.margins)
      if (!token.same_on_all_paths || Math.min(...margins) < data.margin_threshold) break
      text += token.text
      trusted += 1
    }
    assert.ok(trusted >= data.min_trusted_tokens, `${name}: too few tokens hold on every CPU path`)
    assert.deepEqual([trusted, text], [data.trusted_tokens, data.trusted_completion], `${name}: record it again`)
  }
  return data
}

/** Resident memory of this process in MiB (Linux). */
function rssMiB() {
  const status = fs.readFileSync('/proc/self/status', 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024
}

/** Run `work` while a 5 ms interval ticks; returns [result, the longest gap between ticks]. */
async function withTicker(work) {
  let last = performance.now()
  let longest = 0
  const timer = setInterval(() => {
    const now = performance.now()
    longest = Math.max(longest, now - last)
    last = now
  }, 5)
  try {
    const result = await work()
    longest = Math.max(longest, performance.now() - last)
    return [result, longest]
  } finally {
    clearInterval(timer)
  }
}

module.exports = { REPO, SMOLLM2, MINILM, modelPath, fixture, rssMiB, withTicker }
