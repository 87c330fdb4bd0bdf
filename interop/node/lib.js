// Shared plumbing for the device scripts in this folder: command line,
// deadline, logging and the JSON summary. The MQTT work is in the scripts.
'use strict';

const crypto = require('crypto');

const usage = 'usage: node SCRIPT (--host HOST --port PORT | --mqtt HOST:PORT) --thing THING --job JOB_ID [--timeout SECONDS]\n' +
    '(or the environment: MQTT_HOST, MQTT_PORT, THING_NAME, JOB_ID, TIMEOUT_SECONDS)';

// config reads the broker address, thing and job from the command line,
// falling back to the environment.
function config(argv = process.argv.slice(2), env = process.env) {
    const flags = {};
    for (let i = 0; i < argv.length; i++) {
        const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
        if (!m) {
            throw new Error(`unexpected argument ${JSON.stringify(argv[i])}\n${usage}`);
        }
        flags[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
    }
    // --mqtt HOST:PORT names both at once.
    const [mqttHost, mqttPort] = flags.mqtt ? flags.mqtt.split(':') : [];
    const cfg = {
        host: mqttHost || flags.host || env.MQTT_HOST || '127.0.0.1',
        port: Number(mqttPort || flags.port || env.MQTT_PORT || 1883),
        thing: flags.thing || env.THING_NAME,
        job: flags.job || env.JOB_ID,
        timeoutSeconds: Number(flags.timeout || env.TIMEOUT_SECONDS || 30),
    };
    if (!cfg.thing || !cfg.job || !Number.isInteger(cfg.port) || cfg.port <= 0 || !(cfg.timeoutSeconds > 0)) {
        throw new Error(`missing or bad arguments\n${usage}`);
    }
    return cfg;
}

const started = Date.now();

function log(...args) {
    const ms = String(Date.now() - started).padStart(6);
    process.stderr.write(`[${ms} ms] ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}\n`);
}

class CheckError extends Error {}

// check throws when cond is false; what says what was expected, got is
// what came back.
function check(cond, what, got) {
    if (!cond) {
        throw new CheckError(got === undefined ? what : `${what}; got ${JSON.stringify(got)}`);
    }
}

// withTimeout rejects when promise has not settled within ms.
function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

function token() {
    return crypto.randomUUID();
}

// main runs body(cfg, summary), prints summary as one JSON line on stdout
// and exits: 0 when body resolved, 1 when it failed, 2 on the deadline.
function main(client, body) {
    const summary = { client, ok: false, steps: [] };
    let cfg;
    try {
        cfg = config();
    } catch (err) {
        process.stderr.write(`${err.message}\n`);
        process.exit(64);
    }
    Object.assign(summary, { host: cfg.host, port: cfg.port, thing: cfg.thing, jobId: cfg.job });
    let done = false;
    const finish = (code, err) => {
        if (done) {
            return;
        }
        done = true;
        if (err) {
            summary.error = err instanceof CheckError ? err.message : describeError(err);
            log('FAILED:', summary.error);
        }
        summary.ok = code === 0;
        summary.elapsedMs = Date.now() - started;
        process.stdout.write(JSON.stringify(summary) + '\n');
        // Native handles (sockets, event loops) may still be open: leave now.
        process.exit(code);
    };
    const deadline = setTimeout(() => {
        summary.timedOut = true;
        finish(2, new CheckError(`timed out after ${cfg.timeoutSeconds} s; last step: ${JSON.stringify(summary.steps[summary.steps.length - 1] || null)}`));
    }, cfg.timeoutSeconds * 1000);
    deadline.unref();
    process.on('uncaughtException', (err) => finish(1, err));
    process.on('unhandledRejection', (err) => finish(1, err));
    Promise.resolve()
        .then(() => body(cfg, summary, (name, detail) => {
            summary.steps.push(detail === undefined ? name : { [name]: detail });
            log(name, detail === undefined ? '' : detail);
        }))
        .then(() => finish(0), (err) => finish(1, err));
    // Keep the process alive until finish() even if the SDK holds no handle.
    setInterval(() => {}, 1 << 30);
}

function describeError(err) {
    if (!err || typeof err !== 'object') {
        return String(err);
    }
    const parts = [err.stack || err.message || String(err)];
    if (err.modeledError !== undefined) {
        parts.push(`modeledError=${JSON.stringify(err.modeledError)}`);
    }
    if (err.internalError !== undefined) {
        parts.push(`internalError=${JSON.stringify(err.internalError)}`);
    }
    return parts.join(' ');
}

module.exports = { config, log, check, withTimeout, token, main, describeError };
