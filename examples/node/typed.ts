// The TypeScript view of the package, type-checked by the tests (`tsc --noEmit`) and runnable
// after compiling: generate with typed options and results, and handle errors by class.
import { Completion, GenerateOptions, Loader, ModelNotFoundError, UmlError, inspect } from 'uml'

async function main(path: string): Promise<void> {
  const info = await inspect(path)
  console.log(`${info.architecture ?? 'unknown'} model, ${info.parameterCount} parameters`)
  const model = await Loader.load(path, { nCtx: 1024, gpuLayers: 'auto' })
  try {
    const options: GenerateOptions = { maxTokens: 32, temperature: 0, stop: ['\n\n'] }
    const out: Completion = await model.generate('Write a haiku about the sea:', options)
    const reason: 'stop' | 'length' | 'cancelled' = out.finishReason
    console.log(out.text, `[${reason}, ${out.usage.completionTokens} tokens]`)
  } finally {
    await model.close()
  }
}

main(process.argv[2] ?? 'model.gguf').catch((e: unknown) => {
  if (e instanceof ModelNotFoundError) console.error(`no model there: ${e.message}`)
  else if (e instanceof UmlError) console.error(`${e.code}: ${e.message}`)
  else throw e
  process.exitCode = 1
})
