// Chat sessions on the real SmolLM2: turns keep the conversation's place in the cache, one
// turn runs at a time, and closing the model ends the session.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const uml = require('..')
const { modelPath, fixture } = require('./helpers')

const CHAT = fixture('smollm2_chat_greedy.json')
const GREEDY = { maxTokens: 16, temperature: 0 }
const SYSTEM = { role: 'system', content: 'You are a helpful assistant.' }

let model
test.before(async () => {
  model = await uml.Loader.load(modelPath(), { nCtx: 1024 })
})
test.after(async () => {
  await model.close()
})

/** Run `work` on a new session of the shared model, closed after it (`await using` needs a
 * newer Node than the oldest this package supports). */
async function withSession(messages, work) {
  const session = model.session(messages)
  try {
    await work(session)
  } finally {
    await session.close()
  }
}

test("a second turn evaluates only what it adds; messages hold both turns' replies", async () => {
  const session = model.session([SYSTEM])
  assert.ok(session instanceof uml.ChatSession)
  const first = await session.send('What are the first ten prime numbers?', GREEDY)
  const second = await session.send('And the next three?', GREEDY)
  assert.ok(first.text.length > 0 && second.text.length > 0)
  const kept = first.usage.promptTokens + first.usage.completionTokens - 1
  assert.ok(second.usage.cachedPromptTokens >= kept, `kept ${second.usage.cachedPromptTokens} of ${kept}`)
  assert.ok(second.usage.cachedPromptTokens < second.usage.promptTokens)
  assert.deepEqual(session.messages, [
    SYSTEM,
    { role: 'user', content: 'What are the first ten prime numbers?' },
    { role: 'assistant', content: first.text },
    { role: 'user', content: 'And the next three?' },
    { role: 'assistant', content: second.text },
  ])
  await session.close()
})

test("sendStream's pieces join to the reply, which is llama.cpp's greedy text", async () => {
  await withSession(undefined, async (session) => {
    const [content] = CHAT.messages.map((m) => m.content)
    const stream = session.sendStream(content, { maxTokens: 24, temperature: 0 })
    const pieces = []
    for await (const piece of stream) pieces.push(piece)
    assert.ok(pieces.length > 1)
    const text = pieces.join('')
    assert.equal(stream.completion.text, text)
    assert.ok(CHAT.trusted_completion.startsWith(text), `${JSON.stringify(text)} is not llama.cpp's`)
    assert.deepEqual(session.messages, [
      { role: 'user', content },
      { role: 'assistant', content: text },
    ])
  })
})

test('a send (or reset) while a turn runs is BusyError and leaves the history as it was', async () => {
  await withSession([SYSTEM], async (session) => {
    const stream = session.sendStream('Tell me a story.', { maxTokens: 24, temperature: 0 })
    const first = await stream.next()
    assert.equal(first.done, false)
    assert.deepEqual(session.messages, [SYSTEM], 'a running turn appears when it ends')
    await assert.rejects(session.send('Hello?', GREEDY), (e) => {
      assert.ok(e instanceof uml.BusyError, String(e))
      assert.equal(e.code, 'BUSY')
      return true
    })
    assert.throws(() => session.reset([]), uml.BusyError)
    let text = first.value
    for await (const piece of stream) text += piece
    assert.deepEqual(session.messages, [SYSTEM, { role: 'user', content: 'Tell me a story.' }, { role: 'assistant', content: text }])
  })
})

test('reset([]) empties the history; reset(messages) starts over from them', async () => {
  await withSession([SYSTEM], async (session) => {
    await session.send('Hi!', { maxTokens: 4, temperature: 0 })
    assert.equal(session.messages.length, 3)
    session.reset([])
    assert.deepEqual(session.messages, [])
    session.reset([SYSTEM])
    assert.deepEqual(session.messages, [SYSTEM])
    const reply = await session.send('Hi!', { maxTokens: 4, temperature: 0, role: 'user' })
    assert.ok(reply.usage.completionTokens > 0)
    assert.equal(session.messages.length, 3)
  })
})

test('an aborted turn rejects with AbortError', async () => {
  await withSession(undefined, async (session) => {
    const controller = new AbortController()
    const running = session.send('Count to one hundred.', { maxTokens: 24, temperature: 0, signal: controller.signal })
    controller.abort()
    await assert.rejects(running, { name: 'AbortError', code: 'CANCELLED' })
    const after = await session.send('Hi!', { maxTokens: 4, temperature: 0 })
    assert.ok(after.usage.completionTokens > 0, 'the session answers the next turn')
  })
})

test('after model.close(), a turn rejects with ModelClosedError; the messages stay readable', async () => {
  const own = await uml.Loader.load(modelPath(), { nCtx: 256 })
  const session = own.session([SYSTEM])
  await session.send('Hi!', { maxTokens: 4, temperature: 0 })
  await own.close()
  await assert.rejects(session.send('Hi again!', GREEDY), (e) => {
    assert.ok(e instanceof uml.ModelClosedError, String(e))
    assert.equal(e.code, 'MODEL_CLOSED')
    assert.match(e.message, /model\.session/)
    return true
  })
  assert.throws(() => session.sendStream('Hi again!', GREEDY), uml.ModelClosedError)
  assert.equal(session.messages.length, 3)
  assert.throws(() => own.session(), uml.ModelClosedError)
  await session.close()
})

test("closing the session or its model cancels the running turn and waits for it", async () => {
  const own = await uml.Loader.load(modelPath(), { nCtx: 256 })
  try {
    for (const close of [(session) => session.close(), () => own.close()]) {
      const session = own.session()
      const stream = session.sendStream('Tell me a story.', { maxTokens: 24, temperature: 0 })
      assert.equal((await stream.next()).done, false)
      await close(session)
      for await (const _ of stream) {
        // the pieces made before the cancel landed
      }
      assert.equal(stream.completion.finishReason, 'cancelled')
      await session.close()
    }
  } finally {
    await own.close()
  }
})

test('closing the session ends it: later calls throw InvalidArgumentError; close is idempotent', async () => {
  const session = model.session()
  await session.close()
  assert.ok(session.closed)
  await session.close()
  await assert.rejects(session.send('Hi!'), { code: 'INVALID_ARGUMENT', message: /session is closed/ })
  assert.throws(() => session.messages, uml.InvalidArgumentError)
  assert.throws(() => session.reset(), uml.InvalidArgumentError)
})

test('bad arguments are InvalidArgumentError naming the problem', async () => {
  await withSession(undefined, async (session) => {
    await assert.rejects(session.send(), (e) => {
      assert.ok(e instanceof uml.InvalidArgumentError, String(e))
      assert.match(e.message, /content must be a string/)
      return true
    })
    assert.throws(() => session.sendStream(42), uml.InvalidArgumentError)
    await assert.rejects(session.send('Hi', { role: 7 }), uml.InvalidArgumentError)
    await assert.rejects(session.send('Hi', { maxTokenz: 3 }), { code: 'INVALID_ARGUMENT', message: /\bmaxTokenz\b/ })
    for (const bad of ['hello', [{ role: 'user' }], [{ role: '', content: 'x' }], [{ role: 'user', content: 'x', extra: 1 }]]) {
      assert.throws(() => model.session(bad), uml.InvalidArgumentError, JSON.stringify(bad))
      assert.throws(() => session.reset(bad), uml.InvalidArgumentError, JSON.stringify(bad))
    }
    const cyclic = [{ role: 'user', content: 'x' }]
    cyclic[0].self = cyclic
    assert.throws(() => model.session(cyclic), uml.InvalidArgumentError)
    assert.deepEqual(session.messages, [], 'failed calls changed nothing')
  })
})
