// ESM entry point: the same module as `require('uml')` (dist/index.js), with named exports.
// A test checks that this list and the CommonJS exports agree.
import uml from './dist/index.js'

export const {
  Loader,
  Manager,
  Model,
  ChatSession,
  TextStream,
  inspect,
  estimate,
  hardware,
  version,
  UmlError,
  InvalidArgumentError,
  ModelNotFoundError,
  UnsupportedFormatError,
  InvalidModelError,
  OutOfMemoryError,
  AbortError,
  BackendError,
  IoError,
  ContextOverflowError,
  UnsupportedError,
  ModelClosedError,
  InternalError,
  BufferTooSmallError,
  BusyError,
  ERRORS_BY_CODE,
} = uml
export default uml
