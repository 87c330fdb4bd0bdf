#!/usr/bin/env node
// One device running an OTA job, played by aws-iot-device-sdk-v2's
// IotJobsClientv2 over MQTT 5, as firmware written for AWS IoT would:
//
//   ARTIFACT_SHA256=<hex> node ota-mqtt5.js --host 127.0.0.1 --port 1883 --thing pump-42 --job ota-1
//
// The job must already be queued, with a document whose "files" list holds
// objects with a "url" (a presigned-URL placeholder on the service side).
// The device starts the next job, downloads every file with the URL it was
// handed (plain HTTP GET, no credentials: the URL is the authorization),
// checks the download's SHA-256 against ARTIFACT_SHA256, and reports
// SUCCEEDED with the byte count. It prints a JSON summary (with the URLs it
// used) on stdout and exits 0 only if every step worked.
'use strict';

const crypto = require('crypto');
const { mqtt5, iotjobs } = require('aws-iot-device-sdk-v2');
const { log, check, withTimeout, main } = require('./lib');

const { JobStatus } = iotjobs.model;

main('aws-iot-device-sdk-v2 IotJobsClientv2 / MQTT 5 (OTA)', async (cfg, summary, step) => {
    const thingName = cfg.thing;
    const wantSHA = process.env.ARTIFACT_SHA256;
    check(/^[0-9a-f]{64}$/.test(wantSHA || ''), 'ARTIFACT_SHA256 holds the artifact\'s SHA-256 in hex', wantSHA);
    summary.sdk = require('aws-iot-device-sdk-v2/package.json').version;

    const client = new mqtt5.Mqtt5Client({
        hostName: cfg.host,
        port: cfg.port,
        sessionBehavior: mqtt5.ClientSessionBehavior.Clean,
        connectProperties: { clientId: thingName, keepAliveIntervalSeconds: 30 },
        connackTimeoutMs: 5000,
    });
    const connected = new Promise((resolve, reject) => {
        client.once('connectionSuccess', resolve);
        client.once('connectionFailure', (ev) => reject(new Error(`MQTT 5 connect failed: ${ev.error}`)));
    });
    client.start();
    await withTimeout(connected, 10000, 'CONNACK');
    step('connected');

    const jobs = iotjobs.IotJobsClientv2.newFromMqtt5(client, {
        maxRequestResponseSubscriptions: 4,
        maxStreamingSubscriptions: 2,
        operationTimeoutInSeconds: 10,
    });
    const started = await jobs.startNextPendingJobExecution({ thingName, statusDetails: { step: 'download' } });
    const exec = started.execution;
    check(exec && exec.jobId === cfg.job && exec.status === JobStatus.IN_PROGRESS, `start-next starts ${cfg.job}`, started);
    const files = exec.jobDocument && exec.jobDocument.files;
    check(Array.isArray(files) && files.length > 0, 'the job document lists files', exec.jobDocument);
    step('started', { versionNumber: exec.versionNumber });

    summary.urls = [];
    let bytes = 0;
    for (const f of files) {
        check(typeof f.url === 'string' && /^https?:\/\//.test(f.url), 'each file has a URL the device can fetch', f);
        summary.urls.push(f.url);
        const resp = await withTimeout(fetch(f.url), 10000, `GET ${f.url}`);
        const body = Buffer.from(await resp.arrayBuffer());
        check(resp.status === 200, `GET of the presigned URL answers 200`, { status: resp.status, body: body.toString().slice(0, 300) });
        const sha = crypto.createHash('sha256').update(body).digest('hex');
        check(sha === wantSHA, 'the download has the artifact\'s SHA-256', sha);
        bytes += body.length;
        log('downloaded', f.url.split('?')[0], body.length, 'bytes');
    }
    step('downloaded', { bytes });

    const done = await jobs.updateJobExecution({
        thingName, jobId: exec.jobId, status: JobStatus.SUCCEEDED,
        statusDetails: { downloaded: String(bytes) }, expectedVersion: exec.versionNumber, includeJobExecutionState: true,
    });
    check(done.executionState && done.executionState.status === JobStatus.SUCCEEDED, 'the update is accepted as SUCCEEDED', done);
    summary.finalStatus = done.executionState.status;
    step('succeeded');
    client.stop();
});
