// Shared by the examples: the model path from argv[2], else the SmolLM2 test model.
'use strict'

const path = require('node:path')

function modelPath(name = 'SmolLM2-135M-Instruct.Q4_1.gguf') {
  if (process.argv[2]) return process.argv[2]
  return path.join(process.env.UML_MODELS ?? path.join(__dirname, '..', '..', 'models'), name)
}

module.exports = { modelPath }
