/**
 * Removes secrets from request payloads before they are logged, as the Go
 * host does (its `log/scrub.go`): OCI `process.env` and `annotations` and the
 * `Environment` of HCS process parameters, also when they sit inside a
 * JSON-in-string field (`ContainerConfig`, `Settings.ProcessParameters`).
 * Works on the logged text only; the frame on the wire is never touched.
 */
const scrubbedEnv = ["<scrubbed>"]
const scrubbedMap = { "<scrubbed>": "<scrubbed>" }

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

const isObject = (u: Json | undefined): u is { readonly [key: string]: Json } =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const scrubOciProcess = (process: Json | undefined): Json | undefined =>
  isObject(process) && "env" in process ? { ...process, env: scrubbedEnv } : process

const scrubOciSpec = (spec: Json | undefined): Json | undefined => {
  if (!isObject(spec)) return spec
  const out: Record<string, Json> = { ...spec }
  if ("process" in spec) out["process"] = scrubOciProcess(spec["process"]) ?? null
  if ("annotations" in spec) out["annotations"] = scrubbedMap
  return out
}

const scrubProcessParameters = (params: Json | undefined): Json | undefined => {
  if (!isObject(params)) return params
  const out: Record<string, Json> = { ...params }
  if ("Environment" in params) out["Environment"] = scrubbedMap
  if ("OciProcess" in params) out["OciProcess"] = scrubOciProcess(params["OciProcess"]) ?? null
  if ("OciSpecification" in params) out["OciSpecification"] = scrubOciSpec(params["OciSpecification"]) ?? null
  return out
}

const scrubContainerConfig = (config: Json | undefined): Json | undefined => {
  if (!isObject(config)) return config
  const out: Record<string, Json> = { ...config }
  if ("OciSpecification" in config) out["OciSpecification"] = scrubOciSpec(config["OciSpecification"]) ?? null
  if ("Spec" in config) out["Spec"] = scrubOciSpec(config["Spec"]) ?? null
  return out
}

/** Applies `f` to the document inside a JSON-in-string value, keeping it a string. */
const inString = (
  value: Json | undefined,
  f: (inner: Json | undefined) => Json | undefined
): Json | undefined => {
  if (typeof value !== "string") return f(value)
  try {
    return JSON.stringify(f(JSON.parse(value) as Json) ?? null)
  } catch {
    return "<unparsable>"
  }
}

/**
 * The text to log for a request payload of `proc`: the same JSON with every
 * environment and annotation value replaced by `<scrubbed>`. Procedures that
 * carry no such data are returned as they are.
 */
export const scrubRequestPayload = (proc: string, payload: string): string => {
  if (proc !== "Create" && proc !== "ExecuteProcess") return payload
  let body: Json
  try {
    body = JSON.parse(payload) as Json
  } catch {
    return "<unparsable>"
  }
  if (!isObject(body)) return payload
  const out: Record<string, Json> = { ...body }
  if (proc === "Create" && "ContainerConfig" in body) {
    out["ContainerConfig"] = inString(body["ContainerConfig"], scrubContainerConfig) ?? null
  }
  const settings = body["Settings"]
  if (proc === "ExecuteProcess" && isObject(settings)) {
    out["Settings"] = {
      ...settings,
      ProcessParameters: inString(settings["ProcessParameters"], scrubProcessParameters) ?? null
    }
  }
  return JSON.stringify(out)
}
