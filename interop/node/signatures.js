#!/usr/bin/env node
// The AWS SDK for JavaScript v3 (@aws-sdk/client-iot on the control plane,
// @aws-sdk/client-iot-jobs-data-plane on the data plane) against a broker
// that checks SigV4 signatures: what the SDK raises for each way a
// signature can fail, and that a correctly signed call succeeds.
//
//   node signatures.js < plan.json
//
// The plan (one JSON object on stdin) names the endpoints, the right
// credentials, a job queued for a thing, and the failure cases:
//
//   {"api": "http://127.0.0.1:8080", "data": "http://127.0.0.1:8081",
//    "key": "AKIA...", "secret": "...", "thing": "dev-1", "job": "j-1",
//    "cases": [{"name": "unsigned"}, {"name": "wrong secret", "key": "AKIA...",
//               "secret": "x", "region": "us-east-1", "skewSeconds": 0}, ...]}
//
// A case without a key sends no signature at all. The script judges
// nothing: it prints one JSON line on stdout with, per case and per plane,
// the error as the SDK raised it (name, $fault, $metadata.httpStatusCode,
// message, whether it is the client's ServiceException), and the results
// of the signed calls. It exits 0 when it got that far, 1 otherwise.
'use strict';

const iot = require('@aws-sdk/client-iot');
const data = require('@aws-sdk/client-iot-jobs-data-plane');

// noAuth makes a client send its requests with no signature: the SDK's
// own way to do it is an auth scheme whose signer leaves the request alone.
const noAuth = {
    httpAuthSchemes: [{
        schemeId: 'smithy.api#noAuth',
        identityProvider: () => async () => ({}),
        signer: { sign: async (request) => request },
    }],
    httpAuthSchemeProvider: () => [{ schemeId: 'smithy.api#noAuth' }],
};

// clients builds both clients for one case. maxAttempts 1 unless asked:
// the SDK retries some signature errors (a skewed clock) by design.
function clients(plan, c, maxAttempts = 1) {
    const common = {
        region: c.region || 'us-east-1',
        maxAttempts,
        systemClockOffset: (c.skewSeconds || 0) * 1000,
    };
    if (c.key) {
        common.credentials = { accessKeyId: c.key, secretAccessKey: c.secret };
    } else {
        Object.assign(common, noAuth);
    }
    return {
        control: new iot.IoTClient({ ...common, endpoint: plan.api }),
        data: new data.IoTJobsDataPlaneClient({ ...common, endpoint: plan.data }),
    };
}

// raised describes an error as the SDK raised it.
function raised(err, base) {
    return {
        name: err.name,
        fault: err.$fault,
        status: err.$metadata ? err.$metadata.httpStatusCode : undefined,
        attempts: err.$metadata ? err.$metadata.attempts : undefined,
        message: err.message,
        serviceException: err instanceof base,
        constructor: err.constructor ? err.constructor.name : undefined,
    };
}

// attempt runs one call and returns {ok, result} or {ok: false, error}.
async function attempt(call, base) {
    try {
        const out = await call();
        return { ok: true, attempts: out.$metadata.attempts, status: out.$metadata.httpStatusCode, result: out };
    } catch (err) {
        return { ok: false, error: raised(err, base) };
    }
}

async function run(plan) {
    const summary = {
        node: process.version,
        sdk: {
            '@aws-sdk/client-iot': require('@aws-sdk/client-iot/package.json').version,
            '@aws-sdk/client-iot-jobs-data-plane': require('@aws-sdk/client-iot-jobs-data-plane/package.json').version,
        },
        cases: [],
    };
    const listJobs = (cl) => () => cl.control.send(new iot.ListJobsCommand({}));
    const pending = (cl) => () => cl.data.send(new data.GetPendingJobExecutionsCommand({ thingName: plan.thing }));

    for (const c of plan.cases) {
        const cl = clients(plan, c);
        const control = await attempt(listJobs(cl), iot.IoTServiceException);
        const dataPlane = await attempt(pending(cl), data.IoTJobsDataPlaneServiceException);
        summary.cases.push({ name: c.name, control: control.ok ? { ok: true } : control, data: dataPlane.ok ? { ok: true } : dataPlane });
    }

    // The right credentials: the job is listed and described, and queued
    // for the thing.
    const good = clients(plan, { key: plan.key, secret: plan.secret });
    const jobs = await attempt(listJobs(good), iot.IoTServiceException);
    const job = await attempt(() => good.control.send(new iot.DescribeJobCommand({ jobId: plan.job })), iot.IoTServiceException);
    const queue = await attempt(pending(good), data.IoTJobsDataPlaneServiceException);
    summary.signed = {
        listJobs: jobs.ok ? { ok: true, jobIds: jobs.result.jobs.map((j) => j.jobId) } : jobs,
        describeJob: job.ok ? { ok: true, jobId: job.result.job.jobId, status: job.result.job.status } : job,
        getPendingJobExecutions: queue.ok ? { ok: true, queued: queue.result.queuedJobs.map((j) => j.jobId) } : queue,
    };

    // A clock ten minutes slow with the default retries: the SDK reads the
    // server's Date header from the refusal, corrects its clock offset and
    // signs again, as it does against AWS.
    const slow = -600;
    const skewed = clients(plan, { key: plan.key, secret: plan.secret, skewSeconds: slow }, 3);
    const skewedControl = await attempt(listJobs(skewed), iot.IoTServiceException);
    const skewedData = await attempt(pending(skewed), data.IoTJobsDataPlaneServiceException);
    const corrected = async (r, client) => ({
        ok: r.ok,
        attempts: r.attempts,
        error: r.error,
        offsetBeforeSeconds: slow,
        offsetAfterSeconds: (await client.config.systemClockOffset) / 1000,
    });
    summary.skewCorrected = {
        control: await corrected(skewedControl, skewed.control),
        data: await corrected(skewedData, skewed.data),
    };
    return summary;
}

async function main() {
    const chunks = [];
    for await (const chunk of process.stdin) {
        chunks.push(chunk);
    }
    const plan = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const summary = await run(plan);
    process.stdout.write(JSON.stringify(summary) + '\n');
}

main().then(() => process.exit(0), (err) => {
    process.stderr.write(`signatures.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
