#!/usr/bin/env node
// `npm start`: runs the API and one worker on this machine against REDIS_URL. When nothing answers
// there and `redis-server` is on the PATH, runs one as a child (data in ./data/redis, AOF on).
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const say = (msg) => process.stdout.write(`[start] ${msg}\n`);

// START_ENV_FILE and START_REDIS_DIR exist for the start-script test; users keep the defaults.
const envFile = process.env.START_ENV_FILE || '.env';
if (!existsSync(envFile) && existsSync('.env.example')) {
  copyFileSync('.env.example', envFile);
  say(`created ${envFile} from .env.example (edit it to change keys, ports, queues)`);
}
if (existsSync(envFile)) process.loadEnvFile(envFile);

const redisUrl = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
const host = redisUrl.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
const port = Number(redisUrl.port || 6379);
const children = [];
let stopping = false;
let redisChild;

/** Sends PING over a raw socket; true when something answers +PONG (or asks for auth). */
function redisAnswers(timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => done(/^(\+PONG|-NOAUTH|-ERR)/.test(d.toString())));
  });
}

const exited = (c) => c.exitCode !== null || c.signalCode !== null;

/** Stops the apps first and Redis last, so the apps can finish their work against it. */
function stopAll(code) {
  if (stopping) return;
  stopping = true;
  const apps = children.filter((c) => c !== redisChild);
  for (const child of apps) if (!exited(child)) child.kill('SIGTERM');
  const deadline = setTimeout(() => {
    for (const child of children) if (!exited(child)) child.kill('SIGKILL');
    process.exit(code);
  }, 45_000);
  deadline.unref();
  const check = setInterval(() => {
    if (!apps.every(exited)) return;
    if (redisChild && !exited(redisChild)) {
      if (redisChild.signalCode === null && !redisChild.killed) redisChild.kill('SIGTERM');
      return;
    }
    clearInterval(check);
    process.exit(code);
  }, 100);
}

function run(name, command, args, env = {}) {
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  children.push(child);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      say(`${name} exited (${signal ?? code}); stopping the rest`);
      stopAll(code ?? 1);
    }
  });
  return child;
}

async function ensureRedis() {
  // Cluster and sentinel modes do not use REDIS_URL: the apps connect to those nodes themselves.
  const cluster = process.env.REDIS_CLUSTER_NODES;
  const sentinels = process.env.REDIS_SENTINELS;
  if (cluster || sentinels) {
    say(
      cluster
        ? `using the Redis Cluster at ${cluster}`
        : `using Redis through the sentinels ${sentinels}`,
    );
    return;
  }
  if (await redisAnswers()) {
    say(`using Redis at ${host}:${port}`);
    return;
  }
  const local = ['127.0.0.1', 'localhost', '::1'].includes(host);
  const found = (process.env.PATH || '')
    .split(path.delimiter)
    .map((dir) => path.join(dir, 'redis-server'))
    .find((file) => existsSync(file));
  if (!local || !found) {
    process.stderr.write(
      `[start] Nothing answers at REDIS_URL (${host}:${port}) and ${
        found ? 'it is not a local address' : 'no redis-server is on the PATH'
      }.\n` +
        '[start] Start a Redis 7 (e.g. `apt-get install redis-server && redis-server --daemonize yes`,\n' +
        '[start] or `docker run -p 6379:6379 redis:7`) or point REDIS_URL at one in .env.\n',
    );
    process.exit(1);
  }
  const dir = path.resolve(process.env.START_REDIS_DIR || path.join(root, 'data', 'redis'));
  mkdirSync(dir, { recursive: true });
  say(`no Redis at ${host}:${port}; starting ${found} (data in ${dir}, append-only file on)`);
  redisChild = run('redis-server', found, [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
  ]);
  for (let i = 0; i < 50; i++) {
    if (await redisAnswers(200)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stderr.write('[start] redis-server did not answer within 5 s\n');
  stopAll(1);
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => stopAll(0));

await ensureRedis();
if (!stopping) {
  run('api', process.execPath, ['dist/apps/api/main.js']);
  run('worker', process.execPath, ['dist/apps/worker/main.js']);
}
