/**
 * Life cycle: which handles keep the event loop alive, where exceptions
 * thrown by callbacks go, async context propagation, garbage collection of
 * closed handles, worker threads (each on its own loop), and teardown of an
 * environment that still has handles open.
 */
import { AsyncLocalStorage } from "node:async_hooks"
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"
import { afterEach, describe, expect, it } from "vitest"
import { connect, listen, openHandles, SocketEvent } from "../lib/index.js"
import {
  acceptOne,
  bindingDir,
  bindingPrelude,
  closeAll,
  connectTo,
  listenUnix,
  readAll,
  runChild,
  socketPath,
  track
} from "./support.js"

afterEach(async () => {
  expect(await closeAll()).toBe(0)
})

/** Child-process prelude: a Unix address at `path` and a raw connect helper. */
const childSetup = (path: string): string => `
const address = { family: "unix", path: ${JSON.stringify(path)} };
const dial = (onConnected) => {
  const socket = binding.connect(address);
  socket.setCallback((event, err) => {
    if (event === binding.events.connect) onConnected(socket, err);
  });
  return socket;
};
// An unref'd timer fires only if something else keeps the loop alive.
const ifStillAlive = (f) => setTimeout(() => { console.log("still alive"); f(); }, 100).unref();
process.on("exit", () => console.log("open at exit: " + binding.openHandles()));
`

describe("keep-alive policy", () => {
  it("an accepting listener keeps the loop alive", () => {
    const result = runChild(
      childSetup(socketPath()) +
        `const listener = binding.listen(address); listener.start(() => {}); ifStillAlive(() => listener.close());`
    )
    expect(result.stderr).toBe("")
    expect(result.stdout).toBe("still alive\nopen at exit: 0\n")
    expect(result.status).toBe(0)
  })

  it("a paused listener does not, and exiting with it open is clean", () => {
    const result = runChild(
      childSetup(socketPath()) +
        `const listener = binding.listen(address); listener.start(() => {}); listener.pause(); ifStillAlive(() => {});`
    )
    expect(result.stderr).toBe("")
    expect(result.stdout).toBe("open at exit: 1\n")
    expect(result.status).toBe(0)
  })

  const pairScript = (afterConnect: string): string => `
const listener = binding.listen(address);
let server = null;
listener.start((err, socket) => { server = socket; listener.close(); });
dial((client) => {
  client.setCallback(() => {});
  ${afterConnect}
  ifStillAlive(() => { client.close(); if (server) server.close(); });
});
`

  it("a reading socket keeps the loop alive", () => {
    const result = runChild(childSetup(socketPath()) + pairScript(`client.readStart();`))
    expect(result.stderr).toBe("")
    expect(result.stdout).toBe("still alive\nopen at exit: 0\n")
  })

  it("a socket with bytes queued keeps the loop alive", () => {
    const result = runChild(
      childSetup(socketPath()) +
        pairScript(`const chunk = Buffer.alloc(65536); while (client.write([chunk]) === 0) {}`)
    )
    expect(result.stderr).toBe("")
    expect(result.stdout).toBe("still alive\nopen at exit: 0\n")
  })

  it("idle sockets (not reading, nothing queued) do not", () => {
    const result = runChild(childSetup(socketPath()) + pairScript(``))
    expect(result.stderr).toBe("")
    expect(result.stdout).toBe("open at exit: 2\n")
    expect(result.status).toBe(0)
  })
})

describe("callbacks", () => {
  it("an exception thrown by a callback is uncaught, like in net, and the engine carries on", () => {
    const result = runChild(
      childSetup(socketPath()) +
        `
let accepted = 0;
process.on("uncaughtException", (err) => {
  console.log("uncaught: " + err.message);
  dial((client) => client.close());
});
const listener = binding.listen(address);
listener.start((err, socket) => {
  socket.close();
  if (++accepted === 1) throw new Error("boom");
  console.log("accepted again");
  listener.close();
});
dial((client) => client.close());
`
    )
    expect(result.stderr).toBe("")
    expect(result.stdout).toBe("uncaught: boom\naccepted again\nopen at exit: 0\n")
    expect(result.status).toBe(0)
  })

  it("run in the async context their handle was created in", async () => {
    const storage = new AsyncLocalStorage<string>()
    const path = socketPath()
    const seenByListener = storage.run("listener", () => {
      const listener = track(listen({ family: "unix", path }))
      return new Promise<string | undefined>((resolve) =>
        listener.start((_err, socket) => {
          if (socket !== null) track(socket)
          resolve(storage.getStore())
        })
      )
    })
    const seenByConnect = await new Promise<string | undefined>((resolve) =>
      storage.run("connect", () =>
        connect({ family: "unix", path }, (_err, socket) => {
          if (socket !== null) track(socket)
          resolve(storage.getStore())
        })
      )
    )
    expect(seenByConnect).toBe("connect")
    expect(await seenByListener).toBe("listener")
  })
})

describe("engine objects", () => {
  it("cannot be constructed from JavaScript", () => {
    const raw = createRequire(import.meta.url)("node-gyp-build")(bindingDir) as {
      listen(address: unknown): { constructor: new () => unknown; close(): void }
    }
    const listener = track(raw.listen({ family: "unix", path: socketPath() }))
    expect(() => new listener.constructor()).toThrow(TypeError)
  })
})

describe("garbage collection", () => {
  it("keeps open handles alive without references and frees closed ones", () => {
    const result = runChild(
      childSetup(socketPath()) +
        `
// Closed handles whose objects are collected: their memory goes with them.
for (let i = 0; i < 200; i++) {
  const l = binding.listen({ family: "unix", path: address.path + ".gc" + i });
  l.close();
}
// An open listener nobody references still accepts after a collection.
(() => {
  const listener = binding.listen(address);
  listener.start((err, socket) => {
    socket.close();
    listener.close();
    console.log("accepted after gc");
  });
})();
globalThis.gc();
setImmediate(() => {
  globalThis.gc();
  dial((client) => client.close());
});
`,
      ["--expose-gc"]
    )
    expect(result.stderr).toBe("")
    expect(result.stdout).toBe("accepted after gc\nopen at exit: 0\n")
  })
})

describe("worker threads", () => {
  it("runs each environment's handles on its own loop and closes them when the worker dies", async () => {
    const path = socketPath()
    const worker = new Worker(
      bindingPrelude +
        `
const { parentPort, workerData } = require("node:worker_threads");
const listener = binding.listen({ family: "unix", path: workerData.path });
listener.start((err, socket) => {
  socket.setCallback((event, err, chunks) => {
    if (event === binding.events.data) socket.write([Buffer.from("worker:"), ...chunks]);
  });
  socket.readStart();
  parentPort.postMessage({ accepted: true, open: binding.openHandles() });
});
parentPort.postMessage({ listening: true, open: binding.openHandles() });
`,
      { eval: true, workerData: { path } }
    )
    const messages: Array<{ listening?: boolean; accepted?: boolean; open: number }> = []
    const next = (): Promise<{ listening?: boolean; accepted?: boolean; open: number }> =>
      new Promise((resolve) => worker.once("message", resolve))

    messages.push(await next())
    expect(messages[0]).toEqual({ listening: true, open: 1 })
    const accepted = next()
    const client = await connectTo({ family: "unix", path })
    expect(await accepted).toEqual({ accepted: true, open: 2 })
    // The worker's handles are its own: this environment sees only its client.
    expect(openHandles()).toBe(1)

    const reply = new Promise<Buffer>((resolve, reject) => {
      client.setCallback((event, err, chunks) => {
        if (event === SocketEvent.error) reject(err)
        else if (chunks !== null) resolve(Buffer.concat(chunks))
      })
      client.readStart()
    })
    client.write([Buffer.from("ping")])
    expect((await reply).toString()).toBe("worker:ping")

    // Terminating with a listener and a socket open runs the teardown hook:
    // the worker's socket closes, so the client reads the end.
    client.readStop()
    const ended = readAll(client)
    expect(await worker.terminate()).toBe(1)
    expect(await ended).toEqual(Buffer.alloc(0))
  })

  it("a worker that exits on its own with handles open closes them too", async () => {
    const { listener, address } = listenUnix()
    const accepted = acceptOne(listener)
    const worker = new Worker(
      bindingPrelude +
        `
const { workerData } = require("node:worker_threads");
const socket = binding.connect(workerData.address);
socket.setCallback((event) => {
  if (event === binding.events.connect) process.exit(7);
});
`,
      { eval: true, workerData: { address } }
    )
    const exitCode = new Promise<number>((resolve) => worker.once("exit", resolve))
    const { socket } = await accepted
    expect(await readAll(socket)).toEqual(Buffer.alloc(0))
    expect(await exitCode).toBe(7)
  })
})
