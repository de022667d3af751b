// Scrubs logged request payloads as Go's `log/scrub.go` does: OCI `process.env` and `annotations`, HCS
// `Environment`, also inside JSON-in-string fields. Only the logged text; the frame on the wire is untouched.
type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }
type Scrub = (value: Json) => Json

const scrubbed = "<scrubbed>"
const scrubbedMap = { [scrubbed]: scrubbed }

/** `f` applied to the object fields named in `fields`, where present. */
const fields =
  (fields: Readonly<Record<string, Scrub>>): Scrub =>
  (value) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return value
    const out: Record<string, Json> = { ...(value as Record<string, Json>) }
    for (const [key, f] of Object.entries(fields)) if (key in out) out[key] = f(out[key] ?? null)
    return out
  }

/** `f` applied to the document inside a JSON-in-string value, keeping it a string. */
const inString =
  (f: Scrub): Scrub =>
  (value) => {
    if (typeof value !== "string") return f(value)
    try {
      return JSON.stringify(f(JSON.parse(value) as Json))
    } catch {
      return "<unparsable>"
    }
  }

const ociProcess = fields({ env: () => [scrubbed] })
const ociSpec = fields({ process: ociProcess, annotations: () => scrubbedMap })
const byProc: Record<string, Scrub> = {
  Create: fields({ ContainerConfig: inString(fields({ OciSpecification: ociSpec, Spec: ociSpec })) }),
  ExecuteProcess: fields({
    Settings: fields({
      ProcessParameters: inString(
        fields({ Environment: () => scrubbedMap, OciProcess: ociProcess, OciSpecification: ociSpec })
      )
    })
  })
}

/** The text to log for a request payload of `proc`, environment and annotation values replaced. */
export const scrubRequestPayload = (proc: string, payload: string): string => {
  const scrub = byProc[proc]
  if (scrub === undefined) return payload
  try {
    return JSON.stringify(scrub(JSON.parse(payload) as Json))
  } catch {
    return "<unparsable>"
  }
}
