#!/usr/bin/env node
// One device, played by aws-iot-device-sdk-v2's older IotJobsClient (the
// publish/subscribe-per-topic client) over an MQTT 3.1.1 connection on
// plain TCP.
//
//   node jobs-mqtt311.js --host 127.0.0.1 --port 1883 --thing pump-42 --job reboot-1
//
// The job must already be queued for the thing. Like an application built
// on this client, the device subscribes once, up front, to notify-next,
// notify and the accepted/rejected topics of the requests it makes, and
// matches replies to requests by clientToken. It finds the job with
// DescribeJobExecution($next) (reply on $next/get/accepted), starts it with
// StartNextPendingJobExecution, reports progress twice (IN_PROGRESS), sends
// one update with a stale expectedVersion (must be rejected with
// VersionMismatch), finishes with SUCCEEDED, waits for notify-next and
// notify to report the empty queue, and updates an unknown job (must be
// rejected with ResourceNotFound). This client sends thingName and jobId
// inside every request body. It prints a JSON summary on stdout and exits 0
// only if every step went as AWS IoT Jobs specifies.
'use strict';

const { mqtt, io, iotjobs } = require('aws-iot-device-sdk-v2');
const { log, check, withTimeout, token, main } = require('./lib');

const { JobStatus, RejectedErrorCode } = iotjobs.model;
const QOS = mqtt.QoS.AtLeastOnce;
const REPLY_TIMEOUT_MS = 10000;

async function connect(cfg) {
    const client = new mqtt.MqttClient(new io.ClientBootstrap());
    const connection = client.new_connection({
        client_id: cfg.thing,
        host_name: cfg.host,
        port: cfg.port,
        clean_session: true,
        keep_alive: 30,
        socket_options: new io.SocketOptions(io.SocketType.STREAM, io.SocketDomain.IPV4, 5000),
        protocol_operation_timeout: REPLY_TIMEOUT_MS,
        reconnect_min_sec: 1,
        reconnect_max_sec: 2,
    });
    connection.on('interrupt', (err) => log('connection interrupted:', String(err)));
    connection.on('resume', (code, sessionPresent) => log('connection resumed:', { code, sessionPresent }));
    const sessionPresent = await withTimeout(connection.connect(), REPLY_TIMEOUT_MS, 'CONNACK');
    return { connection, sessionPresent };
}

// Replies, matched to requests by clientToken.
class Replies {
    constructor() {
        this.waiting = new Map(); // clientToken -> {resolve, reject, what}
        this.stray = [];
    }

    // handler returns the callback for one accepted or rejected topic.
    handler(topic, kind) {
        return (error, response) => {
            if (error) {
                log(`${topic}: the client could not decode the reply:`, error.message);
                this.stray.push({ topic, error: error.message });
                return;
            }
            const w = response && response.clientToken !== undefined ? this.waiting.get(response.clientToken) : undefined;
            if (!w) {
                log(`${topic}: reply for no request of ours:`, response);
                this.stray.push({ topic, response });
                return;
            }
            this.waiting.delete(response.clientToken);
            w.resolve({ kind, topic, response });
        };
    }

    // request publishes with a fresh clientToken and waits for the reply.
    async request(what, publish, request) {
        const clientToken = token();
        const reply = new Promise((resolve, reject) => this.waiting.set(clientToken, { resolve, reject, what }));
        await publish({ ...request, clientToken });
        return withTimeout(reply, REPLY_TIMEOUT_MS, what).finally(() => this.waiting.delete(clientToken));
    }
}

main('aws-iot-device-sdk-v2 IotJobsClient / MQTT 3.1.1', async (cfg, summary, step) => {
    const thingName = cfg.thing;
    const jobId = cfg.job;
    const unknownJob = `no-such-job-${token().slice(0, 8)}`;
    summary.sdk = require('aws-iot-device-sdk-v2/package.json').version;
    summary.crt = require('aws-crt/package.json').version;
    summary.protocol = 'mqtt311';

    const { connection, sessionPresent } = await connect(cfg);
    step('connected', { sessionPresent });

    const jobs = new iotjobs.IotJobsClient(connection);
    const replies = new Replies();

    // Notifications.
    const events = { notifyNext: [], notify: [] };
    const eventWaiters = [];
    const onEvent = (name) => (error, event) => {
        if (error) {
            log(`${name}: undecodable event:`, error.message);
            return;
        }
        log(`${name} event:`, event);
        events[name].push(event);
        for (const w of [...eventWaiters]) {
            if (w.name === name && w.pred(event)) {
                eventWaiters.splice(eventWaiters.indexOf(w), 1);
                w.resolve(event);
            }
        }
    };
    const nextEvent = (name, pred) => {
        const hit = events[name].find(pred);
        return hit ? Promise.resolve(hit) : new Promise((resolve) => eventWaiters.push({ name, pred, resolve }));
    };

    // Subscribe to everything up front, as applications of this client do.
    const subs = [
        jobs.subscribeToNextJobExecutionChangedEvents({ thingName }, QOS, onEvent('notifyNext')),
        jobs.subscribeToJobExecutionsChangedEvents({ thingName }, QOS, onEvent('notify')),
        jobs.subscribeToDescribeJobExecutionAccepted({ thingName, jobId: '$next' }, QOS, replies.handler('$next/get/accepted', 'accepted')),
        jobs.subscribeToDescribeJobExecutionRejected({ thingName, jobId: '$next' }, QOS, replies.handler('$next/get/rejected', 'rejected')),
        jobs.subscribeToDescribeJobExecutionAccepted({ thingName, jobId }, QOS, replies.handler(`${jobId}/get/accepted`, 'accepted')),
        jobs.subscribeToDescribeJobExecutionRejected({ thingName, jobId }, QOS, replies.handler(`${jobId}/get/rejected`, 'rejected')),
        jobs.subscribeToStartNextPendingJobExecutionAccepted({ thingName }, QOS, replies.handler('start-next/accepted', 'accepted')),
        jobs.subscribeToStartNextPendingJobExecutionRejected({ thingName }, QOS, replies.handler('start-next/rejected', 'rejected')),
        jobs.subscribeToUpdateJobExecutionAccepted({ thingName, jobId }, QOS, replies.handler(`${jobId}/update/accepted`, 'accepted')),
        jobs.subscribeToUpdateJobExecutionRejected({ thingName, jobId }, QOS, replies.handler(`${jobId}/update/rejected`, 'rejected')),
        jobs.subscribeToUpdateJobExecutionAccepted({ thingName, jobId: unknownJob }, QOS, replies.handler(`${unknownJob}/update/accepted`, 'accepted')),
        jobs.subscribeToUpdateJobExecutionRejected({ thingName, jobId: unknownJob }, QOS, replies.handler(`${unknownJob}/update/rejected`, 'rejected')),
    ];
    const subacks = await withTimeout(Promise.all(subs), REPLY_TIMEOUT_MS, 'SUBACKs');
    for (const s of subacks) {
        check(s.error_code === 0 || s.error_code === undefined, `subscription to ${s.topic} granted`, s);
        check(s.qos === QOS, `subscription to ${s.topic} granted at QoS 1`, s);
    }
    step('subscribed', subacks.map((s) => s.topic));

    const accepted = (reply, what) => {
        check(reply.kind === 'accepted', `${what} accepted`, reply);
        return reply.response;
    };
    // A rejection arrives as the client's RejectedErrorResponse on the
    // .../rejected topic.
    const rejected = (reply, what) => {
        check(reply.kind === 'rejected', `${what} rejected`, reply);
        return reply.response;
    };

    // Learn of the job.
    const described = accepted(await replies.request('DescribeJobExecution($next)',
        (r) => jobs.publishDescribeJobExecution(r, QOS), { thingName, jobId: '$next', includeJobDocument: true }),
    'DescribeJobExecution($next)');
    const nextExec = described.execution;
    check(nextExec && nextExec.jobId === jobId, `DescribeJobExecution($next) returns ${jobId}`, described);
    check(nextExec.status === JobStatus.QUEUED, '$next is QUEUED', nextExec.status);
    check(nextExec.versionNumber === 1, '$next is at versionNumber 1', nextExec.versionNumber);
    check(nextExec.jobDocument && typeof nextExec.jobDocument === 'object', 'the job document is a JSON object', nextExec.jobDocument);
    check(Number.isInteger(described.timestamp), 'the reply has an integer timestamp', described.timestamp);
    summary.learnedVia = 'DescribeJobExecution($next)';
    summary.jobDocument = nextExec.jobDocument;
    step('describe $next', { jobId: nextExec.jobId, status: nextExec.status, versionNumber: nextExec.versionNumber });

    // Start it.
    const startDetails = { step: 'starting' };
    const started = accepted(await replies.request('StartNextPendingJobExecution',
        (r) => jobs.publishStartNextPendingJobExecution(r, QOS), { thingName, statusDetails: startDetails }),
    'StartNextPendingJobExecution');
    const exec = started.execution;
    check(exec && exec.jobId === jobId, `start-next returns ${jobId}`, started);
    check(exec.status === JobStatus.IN_PROGRESS, 'start-next puts it IN_PROGRESS', exec.status);
    check(exec.versionNumber === 2, 'start-next bumps versionNumber to 2', exec.versionNumber);
    check(JSON.stringify(exec.statusDetails) === JSON.stringify(startDetails), 'start-next applies statusDetails', exec.statusDetails);
    check(exec.jobDocument && typeof exec.jobDocument === 'object', 'start-next carries the job document', exec.jobDocument);
    let version = exec.versionNumber;
    step('start-next', { status: exec.status, versionNumber: version, statusDetails: exec.statusDetails });

    // Progress.
    summary.updates = [];
    const updateRequest = (job, fields) => replies.request(`UpdateJobExecution(${job})`,
        (r) => jobs.publishUpdateJobExecution(r, QOS), { thingName, jobId: job, ...fields });
    const update = async (status, statusDetails) => {
        const reply = accepted(await updateRequest(jobId, {
            status, statusDetails, expectedVersion: version, includeJobExecutionState: true,
        }), `update to ${status}`);
        const state = reply.executionState;
        check(state && state.status === status, `update to ${status} carries executionState`, reply);
        check(state.versionNumber === version + 1, `update bumps versionNumber to ${version + 1}`, state.versionNumber);
        check(JSON.stringify(state.statusDetails) === JSON.stringify(statusDetails), 'executionState carries the new statusDetails', state.statusDetails);
        version = state.versionNumber;
        summary.updates.push({ status, statusDetails, versionNumber: version });
        step('update', { status, statusDetails, versionNumber: version });
    };
    await update(JobStatus.IN_PROGRESS, { progress: '50' });

    // Rejection 1: a stale expectedVersion.
    summary.rejections = {};
    const stale = version - 1;
    const vm = rejected(await updateRequest(jobId, {
        status: JobStatus.IN_PROGRESS, statusDetails: { progress: '60' }, expectedVersion: stale,
    }), `update with stale expectedVersion ${stale}`);
    check(vm.code === RejectedErrorCode.VERSION_MISMATCH, 'stale expectedVersion is rejected with VersionMismatch', vm);
    check(vm.executionState && vm.executionState.versionNumber === version,
        `VersionMismatch carries executionState at version ${version}`, vm.executionState);
    summary.rejections.versionMismatch = { expectedVersion: stale, error: 'RejectedErrorResponse', modeledError: vm };
    step('stale update rejected', vm);

    await update(JobStatus.IN_PROGRESS, { progress: '90' });
    // A handler's output with its line breaks, as the AWS IoT Device Client reports it.
    const finalDetails = { progress: '100', result: 'ok', stdout: 'line one\nline two\n' };
    await update(JobStatus.SUCCEEDED, finalDetails);

    // The queue is now empty: notify-next says so, notify lists nothing.
    const emptyNext = await withTimeout(nextEvent('notifyNext', (ev) => !ev.execution), REPLY_TIMEOUT_MS, 'notify-next with an empty queue');
    check(Number.isInteger(emptyNext.timestamp), 'notify-next has an integer timestamp', emptyNext);
    const emptyList = await withTimeout(nextEvent('notify', (ev) => ev.jobs && Object.keys(ev.jobs).length === 0), REPLY_TIMEOUT_MS, 'notify with no pending jobs');
    summary.notifyNext = events.notifyNext;
    summary.notify = events.notify;
    step('notifications report the empty queue', { notifyNext: emptyNext, notify: emptyList });

    const after = accepted(await replies.request(`DescribeJobExecution(${jobId})`,
        (r) => jobs.publishDescribeJobExecution(r, QOS), { thingName, jobId }), `DescribeJobExecution(${jobId})`);
    check(after.execution && after.execution.status === JobStatus.SUCCEEDED, 'the execution is SUCCEEDED', after);
    check(JSON.stringify(after.execution.statusDetails) === JSON.stringify(finalDetails), 'the final statusDetails stuck', after.execution.statusDetails);
    summary.finalStatus = after.execution.status;
    summary.finalStatusDetails = after.execution.statusDetails;
    summary.finalVersion = after.execution.versionNumber;
    step('describe', { status: after.execution.status, versionNumber: after.execution.versionNumber });

    // Rejection 2: a job the thing does not have.
    const nf = rejected(await updateRequest(unknownJob, {
        status: JobStatus.IN_PROGRESS, statusDetails: { progress: '1' },
    }), `update of unknown job ${unknownJob}`);
    check(nf.code === RejectedErrorCode.RESOURCE_NOT_FOUND, 'an unknown job is rejected with ResourceNotFound', nf);
    check(nf.executionState === undefined, 'ResourceNotFound carries no executionState', nf);
    summary.rejections.resourceNotFound = { jobId: unknownJob, error: 'RejectedErrorResponse', modeledError: nf };
    step('unknown job rejected', nf);

    check(replies.stray.length === 0, 'no reply arrived that matched no request', replies.stray);
    await withTimeout(connection.disconnect(), 5000, 'DISCONNECT');
    step('disconnected');
});
