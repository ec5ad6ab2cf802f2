// Serve the real TimescaleDB engine (PGlite: PostgreSQL 17 + TimescaleDB, in WebAssembly) over
// the PostgreSQL wire protocol, so tests and the local run reach it with psycopg like any server.
// Usage: node serve.mjs --port 0 [--host 127.0.0.1] [--data-dir DIR]
// Prints one line `READY <port>` on stdout once it accepts connections; SIGTERM stops it.
// PGlite is single-user: one client connection at a time, no background job scheduler.
import { parseArgs } from "node:util";
import { PGlite } from "@electric-sql/pglite";
import { timescaledb } from "@electric-sql/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    "data-dir": { type: "string" },
  },
  strict: true,
});
const port = Number.parseInt(values.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be an integer in 0..65535, got ${values.port}`);
  process.exit(2);
}

const db = await PGlite.create({ dataDir: values["data-dir"], extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, host: values.host, port });
await server.start();
const address = server.server?.address?.();
console.log(`READY ${address?.port ?? port}`);

async function stop() {
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
