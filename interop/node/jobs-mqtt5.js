#!/usr/bin/env node
// One device, played by aws-iot-device-sdk-v2's IotJobsClientv2 (the
// request-response client) over an MQTT 5 connection on plain TCP.
//
//   node jobs-mqtt5.js --host 127.0.0.1 --port 1883 --thing pump-42 --job reboot-1
//
// The job must already be queued for the thing. The device opens the
// notify-next and notify streams, finds the job with GetPendingJobExecutions
// and DescribeJobExecution($next), starts it with
// StartNextPendingJobExecution, reports progress twice (IN_PROGRESS), sends
// one update with a stale expectedVersion (must fail with VersionMismatch),
// finishes with SUCCEEDED, waits for the streams to report the empty queue,
// and updates an unknown job (must fail with ResourceNotFound). It prints a
// JSON summary on stdout and exits 0 only if every step went as AWS IoT
// Jobs specifies.
'use strict';

const { mqtt5, iotjobs } = require('aws-iot-device-sdk-v2');
const { log, check, withTimeout, token, main } = require('./lib');
const { openStream } = require('./streams');

const { JobStatus, RejectedErrorCode } = iotjobs.model;

// connect starts an MQTT 5 client with the thing name as client ID, as
// every AWS device client does, and resolves once CONNACK arrived.
function connect(cfg) {
    const client = new mqtt5.Mqtt5Client({
        hostName: cfg.host,
        port: cfg.port,
        sessionBehavior: mqtt5.ClientSessionBehavior.Clean,
        connectProperties: { clientId: cfg.thing, keepAliveIntervalSeconds: 30 },
        connackTimeoutMs: 5000,
        minReconnectDelayMs: 500,
        maxReconnectDelayMs: 2000,
    });
    const connected = new Promise((resolve, reject) => {
        client.once('connectionSuccess', (ev) => resolve(ev));
        client.once('connectionFailure', (ev) => reject(new Error(`MQTT 5 connect to ${cfg.host}:${cfg.port} failed: ${ev.error}`)));
    });
    client.on('disconnection', (ev) => log('disconnected:', String(ev.error), ev.disconnect || ''));
    client.start();
    return { client, connected };
}

// rejection runs a request that must fail and returns the modeled error
// (the service's rejected payload) that IotJobsClientv2 attaches to its
// ServiceError.
async function rejection(promise, what) {
    let result;
    try {
        result = await promise;
    } catch (err) {
        check(err instanceof Error, `${what}: the client threw a non-Error`, String(err));
        check(err.modeledError !== undefined && err.modeledError !== null,
            `${what}: ServiceError without modeledError (${err.message}; internal ${err.internalError})`);
        return { error: err.constructor.name, description: err.message, modeledError: err.modeledError };
    }
    throw new Error(`${what}: accepted, want rejected: ${JSON.stringify(result)}`);
}

main('aws-iot-device-sdk-v2 IotJobsClientv2 / MQTT 5', async (cfg, summary, step) => {
    const thingName = cfg.thing;
    const jobId = cfg.job;
    const unknownJob = `no-such-job-${token().slice(0, 8)}`;
    summary.sdk = require('aws-iot-device-sdk-v2/package.json').version;
    summary.crt = require('aws-crt/package.json').version;
    summary.protocol = 'mqtt5';

    const { client, connected } = connect(cfg);
    const connack = await withTimeout(connected, 10000, 'CONNACK');
    step('connected', { sessionPresent: connack.connack.sessionPresent, reasonCode: connack.connack.reasonCode });

    const jobs = iotjobs.IotJobsClientv2.newFromMqtt5(client, {
        maxRequestResponseSubscriptions: 4,
        maxStreamingSubscriptions: 2,
        operationTimeoutInSeconds: 10,
    });

    // Streams first, so nothing published from here on is missed.
    const nextStream = openStream(jobs.createNextJobExecutionChangedStream({ thingName }), 'notify-next');
    const changedStream = openStream(jobs.createJobExecutionsChangedStream({ thingName }), 'notify');
    await withTimeout(Promise.all([nextStream.established, changedStream.established]), 10000, 'stream subscriptions');
    step('streams open');

    // Learn of the job.
    const pending = await jobs.getPendingJobExecutions({ thingName });
    const queued = (pending.queuedJobs || []).find((j) => j.jobId === jobId);
    check(queued, `GetPendingJobExecutions lists ${jobId} as queued`, pending);
    check(queued.versionNumber === 1 && queued.executionNumber === 1, 'the queued summary has versionNumber 1, executionNumber 1', queued);
    check(Number.isInteger(pending.timestamp), 'GetPending has an integer timestamp', pending.timestamp);
    step('getPending', { queuedJobs: pending.queuedJobs.map((j) => j.jobId), inProgressJobs: (pending.inProgressJobs || []).map((j) => j.jobId) });

    const described = await jobs.describeJobExecution({ thingName, jobId: '$next', includeJobDocument: true });
    const nextExec = described.execution;
    check(nextExec && nextExec.jobId === jobId, `DescribeJobExecution($next) returns ${jobId}`, described);
    check(nextExec.status === JobStatus.QUEUED, '$next is QUEUED', nextExec.status);
    check(nextExec.jobDocument && typeof nextExec.jobDocument === 'object', 'the job document is a JSON object', nextExec.jobDocument);
    summary.learnedVia = 'GetPendingJobExecutions + DescribeJobExecution($next)';
    summary.jobDocument = nextExec.jobDocument;
    step('describe $next', { jobId: nextExec.jobId, status: nextExec.status, versionNumber: nextExec.versionNumber });

    // Start it.
    const startDetails = { step: 'starting' };
    const started = await jobs.startNextPendingJobExecution({ thingName, statusDetails: startDetails });
    const exec = started.execution;
    check(exec && exec.jobId === jobId, `start-next returns ${jobId}`, started);
    check(exec.thingName === thingName, 'start-next execution names the thing', exec.thingName);
    check(exec.status === JobStatus.IN_PROGRESS, 'start-next puts it IN_PROGRESS', exec.status);
    check(exec.versionNumber === 2, 'start-next bumps versionNumber to 2', exec.versionNumber);
    check(JSON.stringify(exec.statusDetails) === JSON.stringify(startDetails), 'start-next applies statusDetails', exec.statusDetails);
    check(exec.jobDocument && typeof exec.jobDocument === 'object', 'start-next carries the job document', exec.jobDocument);
    check(Number.isInteger(exec.startedAt), 'startedAt is integer seconds', exec.startedAt);
    let version = exec.versionNumber;
    step('start-next', { status: exec.status, versionNumber: version, statusDetails: exec.statusDetails });

    // Progress.
    summary.updates = [];
    const update = async (status, statusDetails) => {
        const reply = await jobs.updateJobExecution({
            thingName, jobId, status, statusDetails, expectedVersion: version, includeJobExecutionState: true,
        });
        const state = reply.executionState;
        check(state && state.status === status, `update to ${status} accepted with executionState`, reply);
        check(state.versionNumber === version + 1, `update bumps versionNumber to ${version + 1}`, state.versionNumber);
        check(JSON.stringify(state.statusDetails) === JSON.stringify(statusDetails), 'executionState carries the new statusDetails', state.statusDetails);
        check(reply.jobDocument === undefined, 'no jobDocument unless asked for', reply.jobDocument);
        version = state.versionNumber;
        summary.updates.push({ status, statusDetails, versionNumber: version });
        step('update', { status, statusDetails, versionNumber: version });
    };
    await update(JobStatus.IN_PROGRESS, { progress: '50' });

    // Rejection 1: a stale expectedVersion.
    summary.rejections = {};
    const stale = version - 1;
    const vm = await rejection(jobs.updateJobExecution({
        thingName, jobId, status: JobStatus.IN_PROGRESS, statusDetails: { progress: '60' }, expectedVersion: stale,
    }), `update with stale expectedVersion ${stale}`);
    check(vm.modeledError.code === RejectedErrorCode.VERSION_MISMATCH, 'stale expectedVersion is rejected with VersionMismatch', vm.modeledError);
    check(vm.modeledError.executionState && vm.modeledError.executionState.versionNumber === version,
        `VersionMismatch carries executionState at version ${version}`, vm.modeledError.executionState);
    check(typeof vm.modeledError.clientToken === 'string' && vm.modeledError.clientToken.length > 0, 'the rejection echoes the clientToken', vm.modeledError);
    summary.rejections.versionMismatch = { expectedVersion: stale, ...vm };
    step('stale update rejected', vm.modeledError);

    await update(JobStatus.IN_PROGRESS, { progress: '90' });
    // A handler's output with its line breaks, as the AWS IoT Device Client reports it.
    const finalDetails = { progress: '100', result: 'ok', stdout: 'line one\nline two\n' };
    await update(JobStatus.SUCCEEDED, finalDetails);

    // The queue is now empty: notify-next says so (no execution), notify
    // lists nothing.
    const emptyNext = await withTimeout(nextStream.next((ev) => !ev.execution), 10000, 'notify-next with an empty queue');
    check(Number.isInteger(emptyNext.timestamp), 'notify-next has an integer timestamp', emptyNext);
    const emptyList = await withTimeout(changedStream.next((ev) => ev.jobs && Object.keys(ev.jobs).length === 0), 10000, 'notify with no pending jobs');
    summary.notifyNext = nextStream.events;
    summary.notify = changedStream.events;
    step('streams report the empty queue', { notifyNext: emptyNext, notify: emptyList });

    const after = await jobs.describeJobExecution({ thingName, jobId });
    check(after.execution && after.execution.status === JobStatus.SUCCEEDED, 'the execution is SUCCEEDED', after);
    check(JSON.stringify(after.execution.statusDetails) === JSON.stringify(finalDetails), 'the final statusDetails stuck', after.execution.statusDetails);
    summary.finalStatus = after.execution.status;
    summary.finalStatusDetails = after.execution.statusDetails;
    summary.finalVersion = after.execution.versionNumber;
    step('describe', { status: after.execution.status, versionNumber: after.execution.versionNumber });

    // Rejection 2: a job the thing does not have.
    const nf = await rejection(jobs.updateJobExecution({
        thingName, jobId: unknownJob, status: JobStatus.IN_PROGRESS, statusDetails: { progress: '1' },
    }), `update of unknown job ${unknownJob}`);
    check(nf.modeledError.code === RejectedErrorCode.RESOURCE_NOT_FOUND, 'an unknown job is rejected with ResourceNotFound', nf.modeledError);
    check(nf.modeledError.executionState === undefined, 'ResourceNotFound carries no executionState', nf.modeledError);
    summary.rejections.resourceNotFound = { jobId: unknownJob, ...nf };
    step('unknown job rejected', nf.modeledError);

    nextStream.op.close();
    changedStream.op.close();
    jobs.close();
    const stopped = new Promise((resolve) => client.once('stopped', resolve));
    client.stop();
    await withTimeout(stopped, 5000, 'MQTT 5 stop');
    client.close();
    step('disconnected');
});
