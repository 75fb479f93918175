// Loading and closing: bad paths and corrupt files are clear errors, closed models say so,
// and many load/close cycles do not grow the process.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const uml = require('..')
const { modelPath, rssMiB } = require('./helpers')

const CYCLES = 200

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'uml-node-'))
}

test('a missing path is NOT_FOUND, a corrupt file INVALID_MODEL, the process goes on', async () => {
  await assert.rejects(uml.Loader.load('/nonexistent/model.gguf'), (e) => {
    assert.ok(e instanceof uml.ModelNotFoundError)
    assert.equal(e.code, 'NOT_FOUND')
    assert.match(e.message, /nonexistent\/model\.gguf/)
    return true
  })
  const dir = tempDir()
  try {
    const truncated = path.join(dir, 'truncated.gguf')
    fs.writeFileSync(truncated, fs.readFileSync(modelPath()).subarray(0, 100_000))
    await assert.rejects(uml.Loader.load(truncated), { code: 'INVALID_MODEL' })
    await assert.rejects(uml.inspect(truncated), { code: 'INVALID_MODEL' })
    const notModel = path.join(dir, 'notes.txt')
    fs.writeFileSync(notModel, 'hello')
    await assert.rejects(uml.inspect(notModel), { code: 'UNSUPPORTED_FORMAT' })
  } finally {
    fs.rmSync(dir, { recursive: true })
  }
  await assert.rejects(uml.Loader.load(modelPath(), { nCtx: -5 }), (e) => {
    assert.equal(e.code, 'INVALID_ARGUMENT')
    assert.match(e.message, /\bnCtx\b/)
    return true
  })
})

test('inspect, estimate and hardware give plain camelCase objects', async () => {
  const info = await uml.inspect(modelPath())
  assert.equal(info.format, 'gguf')
  assert.equal(info.architecture, 'llama')
  assert.ok(info.parameterCount > 100e6 && info.contextLength > 0)
  assert.equal(info.metadata['general.architecture'], 'llama', 'metadata keeps its GGUF keys')
  const est = await uml.estimate(modelPath(), { nCtx: 2048 })
  assert.equal(est.nCtx, 2048)
  assert.equal(est.backend, 'llama.cpp')
  assert.equal(typeof est.fits, 'boolean')
  assert.ok(est.totalBytes > est.weightsBytes && est.availableMemoryBytes > 0)
  await assert.rejects(uml.estimate(modelPath(), { nCtx: 'big' }), { code: 'INVALID_ARGUMENT' })
  // A draft model is loaded beside the model: the load needs both.
  assert.equal(est.draft, null)
  assert.equal(est.loadHostBytes, est.hostBytes)
  const paired = await uml.estimate(modelPath(), { nCtx: 2048, draftModel: modelPath() })
  assert.equal(paired.draft.nCtx, 2048)
  assert.equal(paired.loadHostBytes, paired.hostBytes + paired.draft.hostBytes)
  await assert.rejects(uml.estimate(modelPath(), { draftModel: modelPath() + '.missing' }), {
    code: 'NOT_FOUND',
    message: /draft model/,
  })
  const hw = uml.hardware()
  assert.ok(hw.logicalCores >= 1 && hw.totalMemoryBytes > 0 && typeof hw.cpuModel === 'string')
  assert.equal(hw.cpuKernels, 'native') // a portable build names its variant
})

test('a closed model rejects with MODEL_CLOSED; close is idempotent and cancels running work', async () => {
  const model = await uml.Loader.load(modelPath(), { nCtx: 512 })
  const running = model.generate('Once upon a time', { maxTokens: 400 })
  await new Promise((resolve) => setTimeout(resolve, 50))
  await model.close()
  const out = await running
  assert.equal(out.finishReason, 'cancelled')
  assert.ok(model.closed)
  await model.close()
  await assert.rejects(model.generate('x'), (e) => e instanceof uml.ModelClosedError && e.code === 'MODEL_CLOSED')
  assert.throws(() => model.stream('x'), { code: 'MODEL_CLOSED' })
  assert.throws(() => model.info, { code: 'MODEL_CLOSED' })
  await assert.rejects(model.tokenize('x'), { code: 'MODEL_CLOSED' })
})

test('Symbol.asyncDispose closes the model (what `await using` calls)', async () => {
  const model = await uml.Loader.load(modelPath(), { nCtx: 256 })
  const dispose = Symbol.asyncDispose ?? Symbol.for('nodejs.asyncDispose')
  await model[dispose]()
  assert.ok(model.closed)
})

test(`${CYCLES} load/close cycles keep RSS flat`, async () => {
  const cycle = async () => {
    const model = await uml.Loader.load(modelPath(), { nCtx: 256 })
    await model.generate('Hi', { maxTokens: 1 })
    await model.close()
  }
  for (let i = 0; i < 10; i++) await cycle() // allocator and llama.cpp warm-up
  const samples = []
  for (let i = 0; i < CYCLES; i++) {
    await cycle()
    global.gc?.()
    samples.push(rssMiB())
  }
  // Compare peaks, not two single readings. RSS after a close is not one level but steps
  // between levels about 23 MiB apart (one model's anonymous buffers; measured over 500
  // cycles: bounded, revisited, with or without a GC after each close; presumably memory freed
  // after the malloc_trim uml runs at close, kept by glibc until the next one). A leak grows
  // without bound, so the peak of the last quarter climbs over the first quarter's.
  const quarter = CYCLES / 4
  const early = Math.max(...samples.slice(0, quarter))
  const late = Math.max(...samples.slice(CYCLES - quarter))
  console.log(`# RSS peak over ${CYCLES} load/close cycles: first quarter ${early.toFixed(1)}, last quarter ${late.toFixed(1)} MiB`)
  // Two such steps fit under 60 MiB; a closed model never freed (about 23 MiB anonymous,
  // 100 MiB resident) is caught if it happens once in 60 cycles.
  assert.ok(late - early < 60, `RSS peak grew ${(late - early).toFixed(1)} MiB`)
})
