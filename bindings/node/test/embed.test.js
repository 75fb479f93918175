// A real sentence-embedding model (all-MiniLM-L6-v2) against llama.cpp's llama-embedding.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const uml = require('..')
const { modelPath, fixture, MINILM } = require('./helpers')

const REF = fixture('minilm_embeddings.json')

test('vectors equal llama-embedding, as Float32Arrays', async () => {
  const model = await uml.Loader.load(modelPath(MINILM), { nThreads: 1, embeddings: true })
  try {
    assert.equal(model.embeddingSize, 384)
    const got = await model.embed(REF.texts)
    assert.equal(got.length, REF.texts.length)
    got.forEach((vector, i) => {
      assert.ok(vector instanceof Float32Array)
      assert.equal(vector.length, 384)
      const worst = Math.max(...vector.map((x, j) => Math.abs(x - REF.embeddings[i][j])))
      assert.ok(worst < 1e-4, `text ${i}: off by ${worst}`)
    })
    const dot = (a, b) => a.reduce((s, x, j) => s + x * b[j], 0)
    assert.ok(dot(got[0], got[1]) > dot(got[0], got[2]) + 0.4)
    await assert.rejects(model.generate('Hello'), { code: 'UNSUPPORTED' })
    await assert.rejects(model.embed('not an array'), { code: 'INVALID_ARGUMENT' })
  } finally {
    await model.close()
  }
})
