/**
 * im-client/testing: the harness im-client's own tests use, for runtimes that
 * embed the client and want to test their agents the same way — a real
 * reference server (in this process or in a child process you can SIGKILL)
 * and a fault-injecting TCP proxy between client and server.
 */
export { FaultProxy, type FaultMode } from './FaultProxy.js';
export { ServerProcess, type ServerProcessOptions } from './ServerProcess.js';
export { startTestServer, type TestServer } from './startTestServer.js';
