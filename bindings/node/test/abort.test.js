// AbortSignal and `break`: work stops, the call rejects with an AbortError, and the model
// answers the next call at once.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const uml = require('..')
const { modelPath, fixture } = require('./helpers')

const COUNT = fixture('smollm2_count_greedy.json')
// About 3,500 tokens: the prompt is still being evaluated 100 ms after the start on any machine
// this runs on (and were it not, the 200 tokens after it would be).
const LONG_PROMPT = 'The quick brown fox jumps over the lazy dog. '.repeat(350)

let model
test.before(async () => {
  model = await uml.Loader.load(modelPath(), { nCtx: 4096 })
})
test.after(async () => {
  await model.close()
})

function isAbort(e) {
  assert.ok(e instanceof uml.AbortError, String(e))
  assert.ok(e instanceof uml.UmlError)
  assert.equal(e.name, 'AbortError')
  assert.equal(e.code, 'CANCELLED')
  return true
}

async function answersAtOnce() {
  const out = await model.generate(COUNT.prompt, { maxTokens: 8, temperature: 0 })
  assert.ok(COUNT.trusted_completion.startsWith(out.text) && out.text.length > 0)
}

test('aborting mid-prompt rejects with AbortError carrying the reason', async () => {
  const controller = new AbortController()
  setTimeout(() => controller.abort(new Error('user pressed stop')), 100)
  await assert.rejects(model.generate(LONG_PROMPT, { maxTokens: 200, signal: controller.signal }), (e) => {
    isAbort(e)
    assert.equal(e.cause.message, 'user pressed stop')
    return true
  })
  await answersAtOnce()
})

test('aborting mid-stream ends the iteration with AbortError', async () => {
  const controller = new AbortController()
  const pieces = []
  await assert.rejects(async () => {
    for await (const piece of model.stream('Once upon a time', { maxTokens: 200, signal: controller.signal })) {
      pieces.push(piece)
      if (pieces.length === 3) controller.abort()
    }
  }, isAbort)
  assert.ok(pieces.length >= 3 && pieces.length < 200)
  await answersAtOnce()
})

test('break in for await cancels the generation', async () => {
  const stream = model.stream('Once upon a time', { maxTokens: 500, temperature: 0 })
  let n = 0
  for await (const _ of stream) {
    if (++n === 2) break
  }
  // return() waited for the end: the generation stopped long before 500 tokens.
  assert.equal(stream.completion.finishReason, 'cancelled')
  assert.ok(stream.completion.usage.completionTokens < 500)
  await answersAtOnce()
})

test('an already-aborted signal rejects before any work', async () => {
  const signal = AbortSignal.abort()
  await assert.rejects(model.generate('x', { signal }), isAbort)
  await assert.rejects(model.embed(['x'], { signal }), isAbort)
  assert.throws(() => model.stream('x', { signal }), isAbort)
  await assert.rejects(uml.Loader.load(modelPath(), { signal }), isAbort)
})

test('a load stops when its signal aborts or onProgress returns false', async () => {
  await assert.rejects(uml.Loader.load(modelPath(), { onProgress: () => false }), isAbort)
  const boom = new Error('progress handler failed')
  await assert.rejects(
    uml.Loader.load(modelPath(), {
      onProgress: () => {
        throw boom
      },
    }),
    (e) => e === boom,
  )
  const stages = new Set()
  const m = await uml.Loader.load(modelPath(), { nCtx: 256, onProgress: (stage) => void stages.add(stage) })
  assert.deepEqual([...stages].sort(), ['inspect', 'ready', 'weights'])
  await m.close()
})
