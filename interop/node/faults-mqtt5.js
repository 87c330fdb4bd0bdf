#!/usr/bin/env node
// One device, played by aws-iot-device-sdk-v2's IotJobsClientv2 over MQTT 5,
// against a broker started with a fault file: what the client sees of one
// fault.
//
//   FAULT=reject node faults-mqtt5.js --host 127.0.0.1 --port 1883 --thing pump-1 --job j1
//
// Two jobs must be queued for the thing: JOB, then JOB-next. FAULT names the
// case and the fault the broker was started with:
//
//   reject          update answered VersionMismatch without running (count 1)
//   drop            the start-next reply dropped after it ran (count 1)
//   duplicate       the start-next reply sent twice
//   delay           the start-next reply sent 1 s late
//   disconnect      the connection closed instead of the update's reply (count 1)
//   refuse-connect  the first CONNECT refused
//   drop-notify-next, duplicate-notify, delay-notify-next
//                   the notification that finishing JOB causes
//
// The device starts JOB and finishes it (SUCCEEDED), as the fault allows,
// and reports in its JSON summary what it saw: errors as the client
// surfaced them, how long replies took, the stream events.
'use strict';

const { mqtt5, iotjobs } = require('aws-iot-device-sdk-v2');
const { log, check, withTimeout, main } = require('./lib');
const { openStream } = require('./streams');

const { JobStatus } = iotjobs.model;

function connect(cfg, summary) {
    const client = new mqtt5.Mqtt5Client({
        hostName: cfg.host,
        port: cfg.port,
        sessionBehavior: mqtt5.ClientSessionBehavior.Clean,
        connectProperties: { clientId: cfg.thing, keepAliveIntervalSeconds: 30 },
        connackTimeoutMs: 5000,
        minReconnectDelayMs: 200,
        maxReconnectDelayMs: 500,
    });
    summary.connectionFailures = 0;
    summary.disconnections = 0;
    client.on('connectionFailure', (ev) => {
        summary.connectionFailures++;
        log('connection failure:', String(ev.error));
    });
    client.on('disconnection', (ev) => {
        summary.disconnections++;
        log('disconnected:', String(ev.error));
    });
    const connected = new Promise((resolve) => client.on('connectionSuccess', resolve));
    client.start();
    return { client, connected };
}

// outcome runs a request and returns what the client made of it.
async function outcome(promise) {
    const start = Date.now();
    try {
        const result = await promise;
        return { ok: true, ms: Date.now() - start, result };
    } catch (err) {
        return { ok: false, ms: Date.now() - start, error: String(err && err.message),
            code: err && err.modeledError ? err.modeledError.code : undefined };
    }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

main('aws-iot-device-sdk-v2 IotJobsClientv2 / MQTT 5, under a fault', async (cfg, summary, step) => {
    const thingName = cfg.thing;
    const jobId = cfg.job;
    const fault = process.env.FAULT;
    check(fault, 'FAULT names the case');
    summary.fault = fault;

    const { client, connected } = connect(cfg, summary);
    await withTimeout(connected, 10000, 'CONNACK');
    step('connected', { failuresBefore: summary.connectionFailures });

    const jobs = iotjobs.IotJobsClientv2.newFromMqtt5(client, {
        maxRequestResponseSubscriptions: 4,
        maxStreamingSubscriptions: 2,
        operationTimeoutInSeconds: 3,
    });
    const next = openStream(jobs.createNextJobExecutionChangedStream({ thingName }), 'notify-next');
    const changed = openStream(jobs.createJobExecutionsChangedStream({ thingName }), 'notify');
    await withTimeout(Promise.all([next.established, changed.established]), 10000, 'stream subscriptions');
    step('streams open');

    summary.startNext = await outcome(jobs.startNextPendingJobExecution({ thingName }));
    step('start-next', summary.startNext);
    if (!summary.startNext.ok) {
        // The reply was lost: the start was committed all the same, and
        // asking again returns the execution already IN_PROGRESS.
        summary.startNextAgain = await outcome(jobs.startNextPendingJobExecution({ thingName }));
        step('start-next again', summary.startNextAgain);
    }
    const started = (summary.startNextAgain || summary.startNext).result;
    check(started && started.execution && started.execution.jobId === jobId, `start-next returns ${jobId}`, started);
    check(started.execution.status === JobStatus.IN_PROGRESS, 'it is IN_PROGRESS', started.execution.status);

    const changedBefore = changed.events.length;
    const nextBefore = next.events.length;
    // Notifications are timed from the update's sending: the broker
    // commits, and starts a delay fault's wait, only after it got it.
    summary.updatedAt = Date.now();
    summary.update = await outcome(jobs.updateJobExecution({ thingName, jobId, status: JobStatus.SUCCEEDED }));
    step('update', summary.update);
    if (!summary.update.ok) {
        await sleep(300); // a disconnected client reconnects first
        const described = await outcome(jobs.describeJobExecution({ thingName, jobId }));
        step('describe', described);
        check(described.ok, 'describe after the failed update', described);
        summary.statusAfterFailure = described.result.execution.status;
        if (summary.statusAfterFailure !== JobStatus.SUCCEEDED) {
            summary.updateAgain = await outcome(jobs.updateJobExecution({ thingName, jobId, status: JobStatus.SUCCEEDED }));
            step('update again', summary.updateAgain);
            check(summary.updateAgain.ok, 'the update succeeds the second time', summary.updateAgain);
        }
    }

    // What finishing the job caused: notify, and notify-next for JOB-next.
    await sleep(1500);
    summary.notifyEvents = changed.times.slice(changedBefore).map((at) => at - summary.updatedAt);
    summary.notifyNextEvents = next.events.slice(nextBefore).map((message, i) => ({
        ms: next.times[nextBefore + i] - summary.updatedAt,
        jobId: message.execution ? message.execution.jobId : null,
    }));
    step('notifications', { notify: summary.notifyEvents, notifyNext: summary.notifyNextEvents });

    // A last request, to show the client still works after the fault.
    const last = await outcome(jobs.getPendingJobExecutions({ thingName }));
    check(last.ok, 'GetPendingJobExecutions after the fault', last);
    summary.queuedAfter = (last.result.queuedJobs || []).map((j) => j.jobId);
    client.stop();
});
