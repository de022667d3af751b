import { mkdtempSync, realpathSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import {
  Container,
  Envelope,
  MessageType,
  ModifySettings,
  Negotiate,
  Process,
  Properties
} from "@gcs-bridge/protocol"
import { MemoryAddress, Transport } from "@gcs-bridge/transport"
import { Deferred, Effect, Exit, Fiber, Logger, Option } from "effect"
import { Guest } from "../src/index.js"
import { findPython } from "../src/internal/ptyHelper.js"
import type { Host } from "./host.js"
import { accept, createRequest, Hr, Null, readText, setup, writeText } from "./host.js"

const PATH = `PATH=${process.env["PATH"] ?? "/usr/bin:/bin"}`
const systemNotFound =
  '{"Result":-1070137074,"ActivityId":"00000000-0000-0000-0000-000000000000","ErrorMessage":"HRESULT: 0xc037010e","ErrorRecords":[{"Result":-1070137074,"Message":"HRESULT: 0xc037010e","ModuleName":"gcs","FileName":"","Line":4294967295}]}'

const base = (containerId: string) => new Envelope.RequestBase({ ContainerId: containerId })

const exitCode = (host: Host, containerId: string, pid: number) =>
  host
    .call(
      "WaitForProcess",
      new Process.ContainerWaitForProcess({
        ContainerId: containerId,
        ProcessId: pid,
        TimeoutInMs: Process.InfiniteTimeout
      })
    )
    .pipe(Effect.map((r) => Option.getOrThrowWith(r.body, () => new Error(r.json)).ExitCode))

const signal = (host: Host, containerId: string, pid: number, signo?: number) =>
  host.call(
    "SignalProcess",
    new Process.ContainerSignalProcess({
      ContainerId: containerId,
      ProcessId: pid,
      ...(signo === undefined ? {} : { Options: new Process.SignalProcessOptionsLinux({ Signal: signo }) })
    })
  )

const stacks = (host: Host) => host.ok("DumpStacks", base(Null)).pipe(Effect.map((r) => r.GuestStacks))

/** Polls DumpStacks until `pid` reached one of `states`, yielding to the event loop in between. */
const untilState = (host: Host, pid: number, states: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    for (;;) {
      const text: string = yield* stacks(host)
      const line = text.split("\n").find((l) => l.includes(`pid ${pid} `)) ?? ""
      const state = states.find((s) => line.includes(s))
      if (state !== undefined) return state
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    }
  })

const modify = (
  host: Host,
  containerId: string,
  request: ConstructorParameters<typeof ModifySettings.ModificationRequest>[0]
) =>
  host.call(
    "ModifySettings",
    new ModifySettings.ContainerModifySettings({
      ContainerId: containerId,
      Request: new ModifySettings.ModificationRequest(request)
    })
  )

describe("containers", () => {
  it.effect("create, start, init and exec with stdio, exit codes, the exit notification, delete", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => realpathSync(mkdtempSync(join(tmpdir(), "guest-container-")))),
        (made) => Effect.sync(() => rmSync(made, { recursive: true, force: true }))
      )
      const id = "c7f4d9b2a1e34f5b8c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
      const created = yield* host.create(id, {
        args: ["/bin/sh", "-c", 'echo "init in $(pwd) with $FOO"; read line; echo "got:$line"; exit 5'],
        env: [PATH, "FOO=bar"],
        cwd: dir
      })
      expect(created.json).toBe(
        '{"Result":0,"ActivityId":"00000000-0000-0000-0000-000000000000","SelectedProtocolVersion":0}'
      )
      expect((yield* host.create(id, { args: ["true"] })).result).toBe(Hr.SystemAlreadyExists)
      expect((yield* host.call("Start", base(id))).json).toBe(
        '{"Result":0,"ActivityId":"00000000-0000-0000-0000-000000000000"}'
      )

      const init = yield* host.exec(id, {}, { stdin: true, stdout: true })
      expect(init.reply.result).toBe(0)
      const properties = yield* host.ok(
        "GetProperties",
        new Properties.ContainerGetProperties({
          ContainerId: id,
          Query: new Properties.PropertyQuery({ PropertyTypes: ["ProcessList"] })
        })
      )
      const listed = (properties.Properties as { ProcessList: Array<{ ProcessId: number }> }).ProcessList
      expect(listed.map((p) => p.ProcessId)).toContain(init.pid)

      // An exec'd cat echoes its stdin; its relay waits for the host to close stdout (§14.4a).
      const cat = yield* host.exec(
        id,
        { OciProcess: { args: ["cat"], env: [PATH], cwd: "/" } },
        { stdin: true, stdout: true, stderr: true }
      )
      expect(cat.reply.result).toBe(0)
      yield* writeText(Option.getOrThrow(cat.stdin), "through the container\n")
      expect(yield* readText(Option.getOrThrow(cat.stdout))).toBe("through the container\n")
      expect(yield* readText(Option.getOrThrow(cat.stderr))).toBe("")
      expect(yield* untilState(host, cat.pid, ["relaying output", "exited with"])).toBe("relaying output")
      yield* Option.getOrThrow(cat.stdout).close
      yield* Option.getOrThrow(cat.stderr).close
      expect(yield* exitCode(host, id, cat.pid)).toBe(0)
      expect((yield* signal(host, id, cat.pid)).result).toBe(Hr.NotFound)

      yield* writeText(Option.getOrThrow(init.stdin), "x\n")
      expect(yield* readText(Option.getOrThrow(init.stdout))).toBe(`init in ${dir} with bar\ngot:x\n`)
      yield* Option.getOrThrow(init.stdout).close
      expect(yield* exitCode(host, id, init.pid)).toBe(5)
      const notification = yield* host.notification()
      expect(notification.ContainerId).toBe(id)
      expect(notification.Type).toBe("UnexpectedExit")
      expect(notification.Operation).toBe("None")
      // The init record stays for the container's lifetime.
      expect(yield* exitCode(host, id, init.pid)).toBe(5)
      expect((yield* host.exec(id, { OciProcess: { args: ["true"] } }, {})).reply.result).toBe(
        Hr.SystemAlreadyStopped
      )

      expect((yield* host.call("DeleteContainerState", base(id))).result).toBe(0)
      expect((yield* host.call("DeleteContainerState", base(id))).json).toBe(systemNotFound)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("ShutdownGraceful sends SIGTERM to init and the notification says GracefulExit", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      yield* host.create("graceful", { args: ["cat"], env: [PATH] })
      const init = yield* host.exec("graceful", {}, { stdin: true })
      expect((yield* host.call("ShutdownGraceful", base("graceful"))).result).toBe(0)
      expect(yield* exitCode(host, "graceful", init.pid)).toBe(128 + 15)
      const notification = yield* host.notification()
      expect(notification.Type).toBe("GracefulExit")
      expect((yield* host.call("ShutdownGraceful", base("graceful"))).result).toBe(Hr.SystemAlreadyStopped)
      expect((yield* host.call("ShutdownForced", base("nobody"))).json).toBe(systemNotFound)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect(
    "signals: absent means SIGKILL, SIGKILL to init means ForcedExit, the end of init ends the container",
    () =>
      Effect.gen(function* () {
        const { host } = yield* setup()
        yield* host.negotiate()
        yield* host.create("sig", { args: ["cat"], env: [PATH] })
        const init = yield* host.exec("sig", {}, { stdin: true })
        const first = yield* host.exec("sig", { OciProcess: { args: ["cat"], env: [PATH] } }, { stdin: true })
        const second = yield* host.exec(
          "sig",
          { OciProcess: { args: ["cat"], env: [PATH] } },
          { stdin: true }
        )
        expect((yield* signal(host, "sig", first.pid)).result).toBe(0)
        expect(yield* exitCode(host, "sig", first.pid)).toBe(128 + 9)
        expect((yield* signal(host, "sig", 424242)).result).toBe(Hr.NotFound)
        expect((yield* signal(host, "sig", init.pid, 9)).result).toBe(0)
        expect(yield* exitCode(host, "sig", init.pid)).toBe(128 + 9)
        // The second exec'd cat never saw EOF: it went with its container's init.
        expect(yield* exitCode(host, "sig", second.pid)).toBe(128 + 9)
        expect((yield* host.notification()).Type).toBe("ForcedExit")
      }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("refuses what the Linux GCS refuses around Create and ExecuteProcess", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const old = yield* host.call(
        "Create",
        new Container.ContainerCreate({
          ContainerId: "old",
          ContainerConfig: new Container.LinuxHostedSystem({
            SchemaVersion: new Negotiate.SchemaVersion({ Major: 2, Minor: 0 }),
            OciBundlePath: "",
            OciSpecification: { process: { args: ["true"] } },
            ScratchDirPath: ""
          })
        })
      )
      expect(old.result).toBe(Hr.InvalidJson)
      expect(old.message).toBe("HRESULT 0xc037010d: invalid schema version: {2 0}")
      expect((yield* host.create("noargs", {})).result).toBe(Hr.Fail)
      expect((yield* host.create("badargs", { args: "true" })).result).toBe(Hr.InvalidJson)

      expect((yield* host.exec("unknown", {}, {})).reply.json).toBe(systemNotFound)
      yield* host.create("c", { args: ["cat"], env: [PATH] })
      const early = yield* host.exec("c", { OciProcess: { args: ["true"] } }, {})
      expect(early.reply.result).toBe(Hr.GuestInvalidState)
      const init = yield* host.exec("c", {}, { stdin: true })
      expect((yield* host.exec("c", {}, {})).reply.result).toBe(Hr.Fail)
      const badOci = yield* host.exec("c", { OciProcess: { args: [1, 2] } }, {})
      expect(badOci.reply.result).toBe(Hr.InvalidJson)
      yield* writeText(Option.getOrThrow(init.stdin), "")
      expect(yield* exitCode(host, "c", init.pid)).toBe(0)
      expect((yield* host.notification()).ContainerId).toBe("c")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("gives container processes /dev/null for the streams not asked for, as runc does", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const devNull = ["sh", "-c", "readlink /proc/self/fd/0 /proc/self/fd/2"]
      yield* host.create("init", { args: devNull, env: [PATH] })
      const init = yield* host.exec("init", {}, { stdout: true })
      expect(yield* readText(Option.getOrThrow(init.stdout))).toBe("/dev/null\n/dev/null\n")
      yield* host.create("exec", { args: ["sleep", "1000"], env: [PATH] })
      yield* host.exec("exec", {}, {})
      const exec = yield* host.exec("exec", { OciProcess: { args: devNull, env: [PATH] } }, { stdout: true })
      expect(yield* readText(Option.getOrThrow(exec.stdout))).toBe("/dev/null\n/dev/null\n")
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("GetProperties: ProcessList with descendants, Statistics, refused against the UVM", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      const query = (containerId: string, types: Array<string>) =>
        host.call(
          "GetProperties",
          new Properties.ContainerGetProperties({
            ContainerId: containerId,
            Query: new Properties.PropertyQuery({ PropertyTypes: types })
          })
        )
      const uvm = yield* query(Null, ["ProcessList"])
      expect(uvm.result).toBe(Hr.Fail)
      expect(uvm.message).toBe("getPropertiesV2 is not supported against the UVM")
      expect((yield* query("nobody", ["ProcessList"])).json).toBe(systemNotFound)

      yield* host.create("props", { args: ["sh", "-c", "sleep 1000 & echo started; wait"], env: [PATH] })
      const empty = yield* query("props", ["ProcessList"])
      expect(Option.getOrThrow(empty.body).Properties).toEqual({})
      const init = yield* host.exec("props", {}, { stdin: true, stdout: true })
      const out = Option.getOrThrow(init.stdout)
      // The background sleep shows up as a descendant of the init process.
      const reader = yield* Effect.forkChild(readText(out))
      const list = yield* Effect.gen(function* () {
        for (;;) {
          const r = yield* query("props", ["ProcessList", "Statistics", "Memory"])
          const properties = Option.getOrThrow(r.body).Properties as {
            ProcessList?: Array<{ ProcessId: number }>
            LCOWMetrics: { pids: { current: number }; memory?: { usage: { usage: number } } }
          }
          if ((properties.ProcessList?.length ?? 0) >= 2)
            return { ...properties, ProcessList: properties.ProcessList! }
          yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        }
      })
      expect(list.ProcessList[0]!.ProcessId).toBe(init.pid)
      expect(list.LCOWMetrics.pids.current).toBe(list.ProcessList.length)
      expect(list.LCOWMetrics.memory?.usage.usage ?? 1).toBeGreaterThan(0)
      expect((yield* host.call("ShutdownForced", base("props"))).result).toBe(0)
      yield* Fiber.await(reader)
      yield* out.close
      expect(yield* exitCode(host, "props", init.pid)).toBe(128 + 9)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("ResizeConsole resizes a terminal and refuses a process without one", () =>
    Effect.gen(function* () {
      const python = yield* findPython("python3")
      const { host } = yield* setup()
      yield* host.negotiate()
      yield* host.create("tty", { args: ["sh", "-c", "read go; stty size"], env: [PATH], terminal: true })
      const init = yield* host.exec("tty", {}, { stdin: true, stdout: true })
      const plain = yield* host.exec("tty", { OciProcess: { args: ["cat"], env: [PATH] } }, { stdin: true })
      const resize = (pid: number) =>
        host.call(
          "ResizeConsole",
          new Process.ContainerResizeConsole({ ContainerId: "tty", ProcessId: pid, Height: 40, Width: 120 })
        )
      const refused = yield* resize(plain.pid)
      expect(refused.result).toBe(Hr.Fail)
      expect(refused.message).toBe(`pid: ${plain.pid}, is not a tty and cannot be resized`)
      const resized = yield* resize(init.pid)
      if (Option.isSome(python)) {
        expect(resized.result).toBe(0)
        yield* writeText(Option.getOrThrow(init.stdin), "go\n")
        expect(yield* readText(Option.getOrThrow(init.stdout))).toContain("40 120")
      } else {
        expect(resized.message).toBe(`pid: ${init.pid}, is not a tty and cannot be resized`)
        yield* writeText(Option.getOrThrow(init.stdin), "go\n")
        yield* readText(Option.getOrThrow(init.stdout))
      }
      yield* Option.getOrThrow(init.stdout).close
      expect(yield* exitCode(host, "tty", init.pid)).toBe(0)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect(
    "ModifySettings honours ContainerConstraints and PodCgroupMemoryLimit, refuses the rest as the Linux GCS",
    () =>
      Effect.gen(function* () {
        const { host } = yield* setup()
        yield* host.negotiate()
        const bogus = yield* modify(host, Null, { RequestType: "Add", ResourceType: "Bogus" })
        expect(bogus.result).toBe(Hr.Fail)
        expect(bogus.message).toContain("invalid ResourceType 'Bogus'")
        const badSettings = yield* host.sendRaw(
          0x10100a01,
          `{"ContainerId":"${Null}","ActivityId":"${Null}","Request":{"ResourceType":"MappedVirtualDisk","Settings":{"Lun":"one"}}}`
        )
        expect(host.reply("ModifySettings", yield* host.response(badSettings)).result).toBe(Hr.InvalidJson)
        const disk = yield* modify(host, Null, {
          RequestType: "Add",
          ResourceType: "MappedVirtualDisk",
          Settings: { MountPath: "/run/m", Lun: 1 }
        })
        expect(disk.result).toBe(Hr.Fail)
        expect(disk.message).toContain("cannot be honoured by this guest")
        expect(
          (yield* modify(host, Null, { RequestType: "Update", ResourceType: "PodCgroupMemoryLimit" })).result
        ).toBe(0)
        expect(
          (yield* modify(host, Null, { RequestType: "Add", ResourceType: "PodCgroupMemoryLimit" })).result
        ).toBe(Hr.Fail)
        const constraints = { Windows: {}, Linux: { cpu: { shares: 512 } } }
        expect(
          (yield* modify(host, "nobody", {
            RequestType: "Update",
            ResourceType: "ContainerConstraints",
            Settings: constraints
          })).json
        ).toBe(systemNotFound)
        expect(
          (yield* modify(host, Null, {
            RequestType: "Update",
            ResourceType: "ContainerConstraints",
            Settings: constraints
          })).result
        ).toBe(Hr.SystemNotFound)
        yield* host.create("limits", { args: ["true"] })
        expect(
          (yield* modify(host, "limits", {
            RequestType: "Update",
            ResourceType: "ContainerConstraints",
            Settings: constraints
          })).result
        ).toBe(0)
        expect(yield* stacks(host)).toContain('"shares":512')
        const forContainer = yield* modify(host, "limits", {
          ResourceType: "MappedDirectory",
          Settings: { MountPath: "/m" }
        })
        expect(forContainer.message).toBe(
          'the ResourceType "MappedDirectory" is not supported for containers'
        )
      }).pipe(Effect.provide(Transport.layerMemory))
  )
})

describe("Create with an OCI spec the Linux GCS dies of", () => {
  /** A guest (serving once) receives a Create with `spec`; what came back, and what it logged. */
  const createWith = (spec: Container.LinuxHostedSystem["OciSpecification"]) =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      return yield* Effect.gen(function* () {
        const { host, guest } = yield* setup()
        yield* host.negotiate()
        const id = yield* host.send("Create", createRequest("c1", spec))
        const answered = yield* Effect.raceFirst(
          Effect.map(host.response(id), (frame) => host.reply("Create", frame)),
          Effect.as(Deferred.await(host.ended), "dropped" as const)
        )
        return { answered, guest, logs }
      }).pipe(Effect.provide(Logger.layer([Logger.make(({ message }) => void logs.push(String(message)))])))
    })

  it.effect("drops the bridge without an answer, logs why, and a guest serving once stops", () =>
    Effect.gen(function* () {
      const process = { args: ["true"] }
      const root = { path: "/run/gcs/c/c1/rootfs" }
      const cases: ReadonlyArray<[string, Container.LinuxHostedSystem["OciSpecification"]]> = [
        ["the container config has no OciSpecification", null],
        ['OciSpecification has no "linux" object', { ociVersion: "1.1.0", process, root }],
        ['OciSpecification has no "linux" object', { process, root, linux: null }],
        ['OciSpecification has no "root" object', { process, linux: {} }],
        ['OciSpecification has no "process" object', { root, linux: {} }]
      ]
      for (const [reason, spec] of cases) {
        const { answered, guest, logs } = yield* createWith(spec)
        expect(answered).toBe("dropped")
        expect(logs.join("\n")).toContain(
          `Create of container "c1": ${reason}; the Linux GCS dereferences it and dies: dropping the bridge without an answer`
        )
        expect(Exit.isSuccess(yield* Fiber.await(guest))).toBe(true)
      }
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a spec with linux but no namespaces or mounts is accepted; a wrong type is answered", () =>
    Effect.gen(function* () {
      const accepted = yield* createWith({ process: { args: ["true"] }, root: { path: "/" }, linux: {} })
      expect(accepted.answered !== "dropped" && accepted.answered.result).toBe(0)
      const wrong = yield* createWith({ process: { args: ["true"] }, root: { path: "/" }, linux: [] })
      expect(wrong.answered !== "dropped" && wrong.answered.message).toBe(
        "HRESULT 0xc037010d: OciSpecification.linux is not a JSON object"
      )
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("the duplicate id is refused first, as the Linux GCS checks it before spec.Linux", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.negotiate()
      expect((yield* host.create("twice", { args: ["true"] })).result).toBe(0)
      const again = yield* host.call("Create", createRequest("twice", { process: { args: ["true"] } }))
      expect(again.result).toBe(Hr.SystemAlreadyExists)
    }).pipe(Effect.provide(Transport.layerMemory))
  )

  it.effect("a guest that re-dials serves the next connection after such a Create", () =>
    Effect.gen(function* () {
      const transport = yield* Transport
      const address = new MemoryAddress({ name: "crash-redial" })
      const listener = yield* transport.listen(address, MessageType.LinuxGcsVsockPort)
      yield* Effect.forkScoped(Guest.run({ address, redialDelay: 0 }))
      const first = yield* accept(transport, address, listener)
      yield* first.negotiate()
      yield* first.send("Create", createRequest("c1", { process: { args: ["true"] } }))
      expect(yield* Deferred.await(first.ended)).toBeUndefined()
      const second = yield* accept(transport, address, listener)
      expect((yield* second.negotiate()).result).toBe(0)
    }).pipe(Effect.provide(Transport.layerMemory))
  )
})
