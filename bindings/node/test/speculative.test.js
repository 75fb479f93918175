// Speculative decoding from Node: SmolLM2 drafting for itself (the same vocabulary, so every
// draft is kept) gives the greedy text it gives alone, reports drafted and accepted tokens,
// honours draftMax: 0 and draftMarginMin, and a draft of another vocabulary (Gemma 3) is refused at load. The
// `mtp` option drafts with a model's own prediction heads, on a tiny Qwen3.5 written by core's
// tiny_mtp_model example (as core's tests write it).
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const uml = require('..')
const { modelPath } = require('./helpers')

const REPO = path.resolve(__dirname, '..', '..', '..')

const PROMPT = 'The capital of France is'
const GREEDY = { maxTokens: 32, temperature: 0 }

test('a draft gives the same greedy text and counts its tokens', async () => {
  const alone = await uml.Loader.load(modelPath(), { nCtx: 512 })
  const expected = await alone.generate(PROMPT, GREEDY)
  await alone.close()
  assert.equal(expected.usage.draftedTokens, 0)
  const model = await uml.Loader.load(modelPath(), { nCtx: 512, draftModel: modelPath() })
  try {
    const out = await model.generate(PROMPT, GREEDY)
    assert.equal(out.text, expected.text)
    assert.ok(out.usage.draftedTokens > 0)
    assert.ok(out.usage.acceptedTokens > 0 && out.usage.acceptedTokens <= out.usage.draftedTokens)
    let streamed = ''
    for await (const piece of model.stream(PROMPT, { ...GREEDY, draftMax: 4 })) streamed += piece
    assert.equal(streamed, expected.text)
    const off = await model.generate(PROMPT, { maxTokens: 8, temperature: 0, draftMax: 0 })
    assert.equal(off.usage.draftedTokens, 0)
    // Every token is a "near-tie" under a margin of 1000 logits: nothing is drafted.
    const ties = await model.generate(PROMPT, { ...GREEDY, draftMarginMin: 1000 })
    assert.equal(ties.usage.draftedTokens, 0)
    assert.equal(ties.text, expected.text)
    const through = await model.generate(PROMPT, { ...GREEDY, draftMarginMin: 0 })
    assert.ok(through.usage.draftedTokens >= out.usage.draftedTokens)
    assert.equal(through.text, expected.text)
    await assert.rejects(model.generate('Hi', { draftMarginMin: -1 }), (e) => {
      assert.ok(e instanceof uml.InvalidArgumentError)
      assert.match(e.message, /draftMarginMin/)
      return true
    })
  } finally {
    await model.close()
  }
})

test('a draft of another vocabulary is refused', async () => {
  await assert.rejects(uml.Loader.load(modelPath(), { draftModel: modelPath('gemma-3-270m-q4_k_m.gguf') }), (e) => {
    assert.ok(e instanceof uml.InvalidArgumentError)
    assert.match(e.message, /vocabulary/)
    return true
  })
})

test('mtp drafts with the model\'s own heads and gives its greedy text', async () => {
  const tool = path.join(REPO, 'target', 'release', 'examples', 'tiny_mtp_model')
  if (!fs.existsSync(tool)) {
    execFileSync('cargo', ['build', '--release', '-q', '-p', 'uml-core', '--example', 'tiny_mtp_model'], { cwd: REPO, stdio: 'inherit' })
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uml-mtp-'))
  try {
    const file = path.join(dir, 'tiny-qwen35-mtp.gguf')
    execFileSync(tool, [file, '7', 'echo'])
    const info = await uml.inspect(file)
    assert.equal(info.mtpLayers, 1)
    assert.deepEqual(info.recurrent.recurrent, [true, false, false])
    assert.ok(info.recurrent.stateElements > 0)
    assert.equal(info.recurrent.rollsBack, true)
    assert.equal((await uml.inspect(modelPath())).recurrent, null)
    const prompt = 'once upon a time'
    const greedy = { maxTokens: 48, temperature: 0 }
    const plain = await uml.Loader.load(file, { nCtx: 256 })
    const expected = await plain.generate(prompt, greedy)
    await plain.close()
    const model = await uml.Loader.load(file, { nCtx: 256, mtp: true })
    try {
      const out = await model.generate(prompt, greedy)
      assert.equal(out.text, expected.text)
      assert.ok(out.usage.acceptedTokens > 0 && out.usage.acceptedTokens <= out.usage.draftedTokens)
    } finally {
      await model.close()
    }
    await assert.rejects(uml.Loader.load(modelPath(), { mtp: true }), (e) => {
      assert.ok(e instanceof uml.InvalidArgumentError)
      assert.match(e.message, /no multi-token-prediction heads/)
      return true
    })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
