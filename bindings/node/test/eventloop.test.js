// The event loop stays free while the engine works: a 5 ms interval keeps ticking at least
// every 50 ms during a load, a generation, a chat session's turn and an embedding.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const uml = require('..')
const { modelPath, withTicker, MINILM } = require('./helpers')

const MAX_GAP_MS = 50

test('load, generate, a session turn and embed leave the event loop free', async () => {
  const [model, loadGap] = await withTicker(() => uml.Loader.load(modelPath(), { nCtx: 2048 }))
  try {
    const prompt = 'Tell me a story about a dragon. '.repeat(40)
    const [out, generateGap] = await withTicker(() => model.generate(prompt, { maxTokens: 32 }))
    assert.ok(out.usage.completionTokens > 0)
    const session = model.session()
    const [turn, sessionGap] = await withTicker(() => session.send(prompt, { maxTokens: 24 }))
    assert.ok(turn.usage.completionTokens > 0)
    await session.close()
    const embedder = await uml.Loader.load(modelPath(MINILM), { embeddings: true })
    try {
      const texts = Array.from({ length: 32 }, (_, i) => `sentence number ${i} about cats and dogs`)
      const [vectors, embedGap] = await withTicker(() => embedder.embed(texts))
      assert.equal(vectors.length, 32)
      const gaps = { load: loadGap, generate: generateGap, session: sessionGap, embed: embedGap }
      for (const [what, gap] of Object.entries(gaps)) {
        assert.ok(gap < MAX_GAP_MS, `the event loop stalled ${gap.toFixed(1)} ms during ${what}`)
      }
    } finally {
      await embedder.close()
    }
  } finally {
    await model.close()
  }
})
