// openStream, shared by the device scripts that use IotJobsClientv2's
// streaming operations (notify and notify-next).
'use strict';

const { mqtt_request_response: crtrr } = require('aws-crt');
const { log } = require('./lib');

// openStream opens a streaming operation and records its events (and
// when each came); next(pred) resolves with the first recorded or future
// event that matches pred.
function openStream(op, name) {
    const events = [];
    const times = []; // when each event came, in ms since the epoch
    const waiters = [];
    op.on('incomingPublish', (ev) => {
        log(`${name} event:`, ev.message);
        events.push(ev.message);
        times.push(Date.now());
        for (const w of [...waiters]) {
            if (w.pred(ev.message)) {
                waiters.splice(waiters.indexOf(w), 1);
                w.resolve(ev.message);
            }
        }
    });
    op.on('incomingPublishError', (ev) => log(`${name} undecodable event:`, String(ev.error)));
    const established = new Promise((resolve, reject) => {
        op.on('subscriptionStatus', (ev) => {
            if (ev.type === crtrr.SubscriptionStatusEventType.SubscriptionEstablished) {
                resolve();
            } else if (ev.type === crtrr.SubscriptionStatusEventType.SubscriptionHalted) {
                reject(new Error(`${name} stream halted: ${ev.error}`));
            } else {
                log(`${name} stream lost its subscription:`, String(ev.error));
            }
        });
    });
    op.open();
    return {
        op,
        events,
        times,
        established,
        next(pred) {
            const hit = events.find(pred);
            if (hit) {
                return Promise.resolve(hit);
            }
            return new Promise((resolve) => waiters.push({ pred, resolve }));
        },
    };
}

module.exports = { openStream };
