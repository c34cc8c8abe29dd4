// The `{{name}}` strategy: one TCP connection per run, opened with
// wasi:sockets; `exec` answers CONNECT and PING with the connect timing.
//
// Build it with `checkhost plugin build`; the logic it tests lives in check.js.

import { now, subscribeDuration } from "wasi:clocks/monotonic-clock@0.2.12";
import { poll } from "wasi:io/poll@0.2.12";
import { instanceNetwork } from "wasi:sockets/instance-network@0.2.12";
import { resolveAddresses } from "wasi:sockets/ip-name-lookup@0.2.12";
import { createTcpSocket } from "wasi:sockets/tcp-create-socket@0.2.12";
import { CONFIG_SCHEMA, RESULT_SCHEMA, answer, failure, parseConfig } from "./check.js";

const NS_PER_MS = 1_000_000n;

// A live connection for the run; the host frees it with the run's store.
class Client {
  constructor(socket, streams, timings) {
    this.socket = socket;
    this.streams = streams;
    this.connectTimings = timings;
  }

  exec(request) {
    let reply;
    try {
      reply = answer(request.method);
    } catch (e) {
      throw { tag: "protocol", val: e.message };
    }
    return { ...reply, headers: [], body: new Uint8Array(), timings: this.connectTimings };
  }

  timings() {
    return this.connectTimings;
  }
}

export const strategyPlugin = {
  Client,

  describe() {
    return {
      id: "{{name}}",
      displayName: "{{name}}",
      description: "A TCP connection; CONNECT and PING report its connect time",
      configSchema: JSON.stringify(CONFIG_SCHEMA),
      configVersion: 1,
      resultSchema: JSON.stringify(RESULT_SCHEMA),
    };
  },

  migrate(fromVersion, configJson) {
    return configJson;
  },

  // Throwing a transport-error value ({tag, val}) returns it as the error.
  connect(configJson, ctx) {
    let config;
    try {
      config = parseConfig(configJson);
    } catch (e) {
      throw { tag: "bad-config", val: e.message };
    }
    const { host, port, timeoutMs } = config;
    const network = instanceNetwork();
    // One deadline for name lookup and connect together.
    const deadline = subscribeDuration(BigInt(timeoutMs) * NS_PER_MS);
    try {
      const wait = { deadline, timeoutMs };
      const started = now();
      const address = resolve(network, host, wait);
      const resolved = now();
      const [socket, streams] = openTcp(network, address, port, `${host}:${port}`, wait);
      const connected = now();
      return new Client(socket, streams, {
        dnsMs: Number(resolved - started) / Number(NS_PER_MS),
        connectMs: Number(connected - resolved) / Number(NS_PER_MS),
      });
    } finally {
      deadline[Symbol.dispose]();
    }
  },
};

// The first address of `host` (an IP address resolves to itself).
function resolve(network, host, wait) {
  const what = `cannot resolve \`${host}\``;
  const addresses = call(what, () => resolveAddresses(network, host));
  try {
    const address = whenReady(addresses, () => addresses.resolveNextAddress(), what, wait);
    if (address === undefined) {
      throw { tag: "dns", val: `\`${host}\` has no address` };
    }
    return address;
  } finally {
    addresses[Symbol.dispose]();
  }
}

// [socket, [input stream, output stream]] connected to `address`.
function openTcp(network, address, port, target, wait) {
  const remote =
    address.tag === "ipv4"
      ? { tag: "ipv4", val: { port, address: address.val } }
      : { tag: "ipv6", val: { port, flowInfo: 0, address: address.val, scopeId: 0 } };
  const what = `connect to ${target}`;
  const socket = call(what, () => createTcpSocket(address.tag));
  call(what, () => socket.startConnect(network, remote));
  return [socket, whenReady(socket, () => socket.finishConnect(), what, wait)];
}

// Calls `attempt` until it stops answering would-block, waiting for
// `subject` in between, until the deadline.
function whenReady(subject, attempt, what, { deadline, timeoutMs }) {
  for (;;) {
    try {
      return attempt();
    } catch (e) {
      if (e.payload !== "would-block") {
        throw transportError(e, what);
      }
    }
    const ready = subject.subscribe();
    const inTime = poll([ready, deadline]).includes(0);
    ready[Symbol.dispose]();
    if (!inTime) {
      throw { tag: "timeout", val: `${what}: no answer within ${timeoutMs} ms` };
    }
  }
}

// Calls a wasi:sockets function; its error code becomes a transport error
// naming `what`.
function call(what, f) {
  try {
    return f();
  } catch (e) {
    throw transportError(e, what);
  }
}

function transportError(e, what) {
  if (typeof e.payload !== "string") {
    throw e;
  }
  return failure(e.payload, what);
}
