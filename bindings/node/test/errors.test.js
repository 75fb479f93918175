// Errors: one class per core error kind, and host values JSON cannot hold are clear errors.
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const uml = require('..')
const { modelPath } = require('./helpers')

test('every core error kind has a UmlError class with its code', () => {
  const { native } = require('../dist/native')
  const kinds = native.errorKinds()
  assert.equal(kinds.length, Object.keys(uml.ERRORS_BY_CODE).length)
  for (const [, code] of kinds) {
    const Class = uml.ERRORS_BY_CODE[code]
    assert.ok(Class, `no class for ${code}`)
    const e = new Class('message')
    assert.ok(e instanceof uml.UmlError && e instanceof Error)
    assert.equal(e.code, code)
    assert.equal(e.message, 'message')
  }
})

test("the package's OpenMP spin setting is core's", () => {
  const { native, OPENMP_SPIN } = require('../dist/native')
  assert.deepEqual(native.openmpSpin(), OPENMP_SPIN)
  assert.equal(process.env.GOMP_SPINCOUNT, OPENMP_SPIN[1])
})

test('a self-referential or absurdly deep option is INVALID_ARGUMENT, not a crash', async () => {
  const model = await uml.Loader.load(modelPath(), { nCtx: 256 })
  try {
    const cyclic = { type: 'object' }
    cyclic.properties = { self: cyclic }
    await assert.rejects(model.generate('x', { jsonSchema: cyclic }), (e) => {
      assert.equal(e.code, 'INVALID_ARGUMENT')
      assert.match(e.message, /contain itself/)
      return true
    })
    let deep = {}
    for (let i = 0; i < 100_000; i++) deep = { a: deep }
    await assert.rejects(model.generate('x', { jsonSchema: deep }), { code: 'INVALID_ARGUMENT' })
    const messages = [{ role: 'user', content: 'hi' }]
    messages[0].extra = messages
    await assert.rejects(model.chat(messages), { code: 'INVALID_ARGUMENT' })
    // Nested deeper than core's JSON limit, but within what JSON.stringify can write.
    let schema = {}
    for (let i = 0; i < 500; i++) schema = { type: 'array', items: schema }
    await assert.rejects(model.generate('x', { jsonSchema: schema }), { code: 'INVALID_ARGUMENT' })
    assert.equal((await model.generate('1, 2,', { maxTokens: 2, temperature: 0 })).finishReason, 'length')
  } finally {
    await model.close()
  }
})
