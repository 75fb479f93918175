// Speculative decoding from Node: SmolLM2 drafting for itself (the same vocabulary, so every
// draft is kept) gives the greedy text it gives alone, reports drafted and accepted tokens,
// honours draftMax: 0, and a draft of another vocabulary (Gemma 3) is refused at load.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const uml = require('..')
const { modelPath } = require('./helpers')

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
