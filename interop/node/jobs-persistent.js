#!/usr/bin/env node
// One device that keeps a persistent session across a broker restart,
// played by aws-iot-device-sdk-v2's IotJobsClient over an MQTT 3.1.1
// connection (clean session off), as a fleet runs the AWS IoT Device
// Client.
//
//   node jobs-persistent.js --host 127.0.0.1 --port 1883 --thing pump-42 --job reboot-1
//
// The device connects, subscribes once to notify-next and to the reply
// topics of the requests it will make, and prints {"ready":true} on
// stdout. The test then restarts the broker on the same address and
// creates the job. The SDK reconnects by itself and, like the CRT's MQTT
// 3.1.1 stack, subscribes to nothing again: the device must find its
// session present, hear of the job through the notify-next subscription it
// made before the restart, and run it to SUCCEEDED. It prints a JSON
// summary on stdout and exits 0 only if every step went so.
'use strict';

const { mqtt, io, iotjobs } = require('aws-iot-device-sdk-v2');
const { log, check, withTimeout, token, main } = require('./lib');

const { JobStatus } = iotjobs.model;
const QOS = mqtt.QoS.AtLeastOnce;
const REPLY_TIMEOUT_MS = 10000;
const RESTART_TIMEOUT_MS = 60000;

main('aws-iot-device-sdk-v2 IotJobsClient / MQTT 3.1.1, persistent session', async (cfg, summary, step) => {
    const thingName = cfg.thing;
    const jobId = cfg.job;
    summary.sdk = require('aws-iot-device-sdk-v2/package.json').version;
    summary.crt = require('aws-crt/package.json').version;
    summary.protocol = 'mqtt311';

    const client = new mqtt.MqttClient(new io.ClientBootstrap());
    const connection = client.new_connection({
        client_id: thingName,
        host_name: cfg.host,
        port: cfg.port,
        clean_session: false,
        keep_alive: 30,
        socket_options: new io.SocketOptions(io.SocketType.STREAM, io.SocketDomain.IPV4, 5000),
        protocol_operation_timeout: REPLY_TIMEOUT_MS,
        reconnect_min_sec: 1,
        reconnect_max_sec: 2,
    });
    let resumed;
    const resumedOnce = new Promise((resolve) => { resumed = resolve; });
    connection.on('interrupt', (err) => log('connection interrupted:', String(err)));
    connection.on('resume', (code, sessionPresent) => {
        log('connection resumed:', { code, sessionPresent });
        resumed({ code, sessionPresent });
    });
    summary.sessionPresentAtFirst = await withTimeout(connection.connect(), REPLY_TIMEOUT_MS, 'CONNACK');
    step('connected', { sessionPresent: summary.sessionPresentAtFirst });
    check(summary.sessionPresentAtFirst === false, 'a new session is not present', summary.sessionPresentAtFirst);

    const jobs = new iotjobs.IotJobsClient(connection);
    summary.notifyNext = [];
    const nextWaiters = [];
    const onNext = (error, event) => {
        if (error) {
            log('notify-next: undecodable event:', error.message);
            return;
        }
        log('notify-next event:', event);
        summary.notifyNext.push(event);
        for (const w of [...nextWaiters]) {
            if (w.pred(event)) {
                nextWaiters.splice(nextWaiters.indexOf(w), 1);
                w.resolve(event);
            }
        }
    };
    const nextEvent = (pred) => {
        const hit = summary.notifyNext.find(pred);
        return hit ? Promise.resolve(hit) : new Promise((resolve) => nextWaiters.push({ pred, resolve }));
    };
    // Replies, matched by clientToken.
    const waiting = new Map();
    const reply = (kind) => (error, response) => {
        const w = response && waiting.get(response.clientToken);
        if (error || !w) {
            log(`a ${kind} reply for no request of ours:`, error ? error.message : response);
            return;
        }
        waiting.delete(response.clientToken);
        w({ kind, response });
    };
    const request = async (what, publish, req) => {
        const clientToken = token();
        const got = new Promise((resolve) => waiting.set(clientToken, resolve));
        await publish({ ...req, clientToken });
        const r = await withTimeout(got, REPLY_TIMEOUT_MS, what);
        check(r.kind === 'accepted', `${what} accepted`, r);
        return r.response;
    };

    const subacks = await withTimeout(Promise.all([
        jobs.subscribeToNextJobExecutionChangedEvents({ thingName }, QOS, onNext),
        jobs.subscribeToStartNextPendingJobExecutionAccepted({ thingName }, QOS, reply('accepted')),
        jobs.subscribeToStartNextPendingJobExecutionRejected({ thingName }, QOS, reply('rejected')),
        jobs.subscribeToUpdateJobExecutionAccepted({ thingName, jobId }, QOS, reply('accepted')),
        jobs.subscribeToUpdateJobExecutionRejected({ thingName, jobId }, QOS, reply('rejected')),
    ]), REPLY_TIMEOUT_MS, 'SUBACKs');
    for (const s of subacks) {
        check(s.qos === QOS, `subscription to ${s.topic} granted at QoS 1`, s);
    }
    step('subscribed', subacks.map((s) => s.topic));
    process.stdout.write(JSON.stringify({ ready: true }) + '\n');

    // The broker restarts; the SDK reconnects on its own.
    const resume = await withTimeout(resumedOnce, RESTART_TIMEOUT_MS, 'reconnection after the broker restart');
    summary.sessionPresentAfterRestart = resume.sessionPresent;
    check(resume.sessionPresent === true, 'the session is present after the broker restart', resume);

    const next = await withTimeout(nextEvent((ev) => ev.execution && ev.execution.jobId === jobId),
        REPLY_TIMEOUT_MS, `notify-next for ${jobId}`);
    check(next.execution.status === JobStatus.QUEUED, 'notify-next names the job QUEUED', next);
    summary.learnedVia = 'notify-next';
    step('notify-next', next.execution);

    const started = await request('StartNextPendingJobExecution',
        (r) => jobs.publishStartNextPendingJobExecution(r, QOS), { thingName });
    check(started.execution && started.execution.jobId === jobId, `start-next starts ${jobId}`, started);
    let version = started.execution.versionNumber;
    summary.updates = [];
    for (const [status, details] of [[JobStatus.IN_PROGRESS, { progress: '50' }], [JobStatus.SUCCEEDED, { progress: '100' }]]) {
        const r = await request(`update to ${status}`, (req) => jobs.publishUpdateJobExecution(req, QOS),
            { thingName, jobId, status, statusDetails: details, expectedVersion: version, includeJobExecutionState: true });
        check(r.executionState && r.executionState.status === status, `update to ${status} applied`, r);
        version = r.executionState.versionNumber;
        summary.updates.push({ status, statusDetails: details, versionNumber: version });
        step('update', { status, versionNumber: version });
    }
    summary.finalStatus = JobStatus.SUCCEEDED;
    summary.finalVersion = version;
    const notifications = summary.notifyNext.filter((ev) => ev.execution && ev.execution.jobId === jobId);
    summary.notifyNextForJob = notifications.length;
    await withTimeout(connection.disconnect(), 5000, 'DISCONNECT');
    step('disconnected');
});
