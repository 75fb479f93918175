// ESM `import` gets the same module as CommonJS `require`.
import test from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import * as esm from 'uml'
import umlDefault, { Loader, UmlError } from 'uml'

const cjs = createRequire(import.meta.url)('uml')

test('import and require give the same exports', () => {
  const named = Object.keys(esm).filter((k) => k !== 'default').sort()
  assert.deepEqual(named, Object.keys(cjs).sort())
  assert.equal(umlDefault, cjs)
  assert.equal(Loader, cjs.Loader)
  assert.equal(UmlError, cjs.UmlError)
})
