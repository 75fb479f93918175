// Generation on the real SmolLM2 against llama.cpp's own greedy output.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const uml = require('..')
const { modelPath, fixture } = require('./helpers')

const COUNT = fixture('smollm2_count_greedy.json')
const CODE = fixture('smollm2_code_greedy.json')
const CHAT = fixture('smollm2_chat_greedy.json')

let model
test.before(async () => {
  model = await uml.Loader.load(modelPath(), { nCtx: 1024 })
})
test.after(async () => {
  await model.close()
})

for (const ref of [COUNT, CODE]) {
  test(`greedy generate equals llama-simple: ${JSON.stringify(ref.prompt)}`, async () => {
    const out = await model.generate(ref.prompt, { maxTokens: ref.trusted_tokens, temperature: 0 })
    assert.equal(out.text, ref.trusted_completion)
    assert.equal(out.finishReason, 'length')
    assert.equal(out.usage.completionTokens, ref.trusted_tokens)
    assert.ok(out.usage.promptTokens > 0 && out.usage.generationTokensPerSecond > 0)
  })
}

test('streamed pieces join to the generated text', async () => {
  const pieces = []
  const stream = model.stream(COUNT.prompt, { maxTokens: COUNT.trusted_tokens, temperature: 0 })
  for await (const piece of stream) pieces.push(piece)
  assert.ok(pieces.length > 1)
  assert.equal(pieces.join(''), COUNT.trusted_completion)
  assert.equal(stream.completion.text, COUNT.trusted_completion)
  assert.equal(stream.completion.finishReason, 'length')
})

test("chat renders the model's own template and answers as llama.cpp does", async () => {
  assert.equal(await model.renderChat(CHAT.messages), CHAT.prompt)
  const reply = await model.chat(CHAT.messages, { maxTokens: CHAT.trusted_tokens, temperature: 0 })
  assert.equal(reply.text, CHAT.trusted_completion)
  let streamed = ''
  for await (const piece of model.chatStream(CHAT.messages, { maxTokens: CHAT.trusted_tokens, temperature: 0 })) {
    streamed += piece
  }
  assert.equal(streamed, reply.text)
})

test('a stop string ends the text before it, streamed or not', async () => {
  const out = await model.generate(COUNT.prompt, { maxTokens: 24, temperature: 0, stop: [' 8,'] })
  assert.equal(out.text, ' 5, 6, 7,')
  assert.equal(out.finishReason, 'stop')
  let streamed = ''
  for await (const piece of model.stream(COUNT.prompt, { maxTokens: 24, temperature: 0, stop: [' 8,'] })) {
    streamed += piece
  }
  assert.equal(streamed, ' 5, 6, 7,')
})

test('a seed makes sampling repeat; snake_case keys work too', async () => {
  const opts = { maxTokens: 16, temperature: 0.9, seed: 42 }
  const a = await model.generate('Once upon a time', opts)
  const b = await model.generate('Once upon a time', { max_tokens: 16, temperature: 0.9, seed: 42 })
  assert.equal(a.text, b.text)
})

test('invalid options reject with INVALID_ARGUMENT naming the field as written', async () => {
  const cases = [
    [{ maxTokens: -1 }, 'maxTokens'],
    [{ temperature: 'hot' }, 'temperature'],
    [{ topP: 2 }, 'topP'],
    [{ maxTokenz: 3 }, 'maxTokenz'],
  ]
  for (const [opts, name] of cases) {
    await assert.rejects(model.generate('x', opts), (e) => {
      assert.ok(e instanceof uml.InvalidArgumentError, `${name}: ${e}`)
      assert.equal(e.code, 'INVALID_ARGUMENT')
      assert.match(e.message, new RegExp(`\\b${name}\\b`))
      return true
    })
  }
  // The list of known names is in JavaScript's spelling too.
  await assert.rejects(model.generate('x', { maxTokenz: 3 }), /known: maxTokens, temperature, topK/)
})

test('tokenize and detokenize round-trip; info says how the model runs', async () => {
  const tokens = await model.tokenize('Hello world')
  assert.ok(tokens.length >= 2 && tokens.every(Number.isInteger))
  assert.equal(await model.detokenize(tokens), 'Hello world')
  assert.deepEqual(await model.tokenize('Hello world', { addSpecial: false }), tokens)
  const info = model.info
  assert.equal(info.backend, 'llama.cpp')
  assert.equal(info.model.architecture, 'llama')
  assert.equal(info.plan.nCtx, 1024)
  assert.ok(info.memory.totalBytes > 0)
  assert.ok(Object.keys(info.model.tensorTypes).includes('Q4_1'), 'data maps keep their keys')
})

test('a prompt longer than the context is CONTEXT_OVERFLOW', async () => {
  await assert.rejects(model.generate('hello '.repeat(3000)), { code: 'CONTEXT_OVERFLOW' })
})

test('two generations at once each get the text they get alone', async () => {
  const [a, b] = await Promise.all([
    model.generate(COUNT.prompt, { maxTokens: COUNT.trusted_tokens, temperature: 0 }),
    model.generate(CODE.prompt, { maxTokens: CODE.trusted_tokens, temperature: 0 }),
  ])
  assert.equal(a.text, COUNT.trusted_completion)
  assert.equal(b.text, CODE.trusted_completion)
})

test('a deterministic generation runs alone and gives the fixture text beside batched ones', async () => {
  const outs = await Promise.all(
    [true, false, true, false].map((deterministic) =>
      model.generate(COUNT.prompt, { maxTokens: COUNT.trusted_tokens, temperature: 0, deterministic }),
    ),
  )
  for (const out of outs) assert.equal(out.text, COUNT.trusted_completion)
})

test('with every slot running and no room in line, a caller gets BusyError', async () => {
  const busy = await uml.Loader.load(modelPath(), { nCtx: 512, maxParallel: 1, maxQueued: 0 })
  try {
    const controller = new AbortController()
    const stream = busy.stream('Once upon a time', { maxTokens: 200, temperature: 0, signal: controller.signal })
    const first = await stream.next()
    assert.equal(first.done, false)
    await assert.rejects(busy.generate('Hello', { maxTokens: 4 }), (e) => {
      assert.ok(e instanceof uml.BusyError)
      assert.equal(e.code, 'BUSY')
      assert.match(e.message, /maxQueued|max_queued/)
      return true
    })
    controller.abort()
    await assert.rejects(async () => {
      for await (const _ of stream) {
        // drain until the abort lands
      }
    }, { name: 'AbortError' })
    const after = await busy.generate('Hello', { maxTokens: 4, temperature: 0 })
    assert.ok(after.usage.completionTokens > 0)
  } finally {
    await busy.close()
  }
})

test('contextShift goes on past a full context; without it the text stops at the context', async () => {
  const small = await uml.Loader.load(modelPath(), { nCtx: 64 })
  try {
    const banned = {}
    for (const t of await small.tokenize('<|im_end|><|endoftext|>', { addSpecial: false })) banned[t] = -1000
    const opts = { maxTokens: 200, temperature: 0, logitBias: banned }
    const stopped = await small.generate('Once upon a time', opts)
    assert.ok(stopped.usage.completionTokens < 64)
    const out = await small.generate('Once upon a time', { ...opts, contextShift: true })
    assert.equal(out.usage.completionTokens, 200)
    assert.ok(out.text.startsWith(stopped.text))
  } finally {
    await small.close()
  }
})

test('bench measures prompt and generation speed; version and path are plain strings', async () => {
  const report = await model.bench({ nPrompt: 16, nGen: 4, repetitions: 1 })
  assert.deepEqual(report.tests.map((t) => t.test), ['pp16', 'tg4'])
  assert.ok(report.tests.every((t) => t.median > 0))
  await assert.rejects(model.bench({ nPromt: 16 }), { code: 'INVALID_ARGUMENT' })
  assert.equal(uml.version, require('../package.json').version)
  assert.equal(model.path, modelPath())
  assert.equal(model.closed, false)
})

test('next() calls made at once settle in order', async () => {
  const stream = model.stream(COUNT.prompt, { maxTokens: 6, temperature: 0 })
  const results = await Promise.all(Array.from({ length: 10 }, () => stream.next()))
  const text = results.filter((r) => !r.done).map((r) => r.value).join('')
  assert.ok(COUNT.trusted_completion.startsWith(text) && text.length > 0)
  assert.ok(results.at(-1).done)
  assert.equal(stream.completion.text, text)
})

test("a chat's second turn evaluates only its new tokens; a repeated prompt only its last", async () => {
  const turn1 = [{ role: 'user', content: 'What are the first ten prime numbers?' }]
  const reply = await model.chat(turn1, { maxTokens: 16, temperature: 0 })
  const turn2 = [...turn1, { role: 'assistant', content: reply.text }, { role: 'user', content: 'And the next three?' }]
  const answer = await model.chat(turn2, { maxTokens: 16, temperature: 0 })
  const firstTurn = (await model.tokenize(await model.renderChat(turn1))).length
  assert.ok(answer.usage.cachedPromptTokens >= firstTurn, `kept ${answer.usage.cachedPromptTokens} of ${firstTurn}`)
  assert.ok(answer.text.length > 0)
  // Kept state gives llama.cpp's text: the fixture's completion holds up to its first near-tie
  // whichever way the prompt was evaluated (core's tests show where a kept reply can differ).
  const opts = { maxTokens: COUNT.trusted_tokens, temperature: 0 }
  await model.generate(COUNT.prompt, opts)
  const again = await model.generate(COUNT.prompt, opts)
  assert.equal(again.usage.cachedPromptTokens, again.usage.promptTokens - 1)
  assert.equal(again.text, COUNT.trusted_completion)
})
