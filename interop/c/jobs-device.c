/*
 * jobs-device: a device written in C, on libmosquitto, that runs its next
 * AWS IoT job: the flow of the README's "Testing device code" recipe.
 *
 *   cc -o jobs-device jobs-device.c -lmosquitto
 *   ./jobs-device -h localhost -p 1883 -i pump-7
 *
 * It connects with its thing name as client id, asks for its next job
 * (start-next), reports it SUCCEEDED, and retries a request the broker
 * rejected with a code worth retrying (InternalError, RequestThrottled),
 * as device code must against AWS IoT. It exits 0 once the update is
 * accepted, 1 on any other rejection or when no job is pending, and 2 when
 * 20 seconds pass first.
 *
 * It builds the Jobs topics and messages itself, as AWS's embedded Jobs
 * library (Jobs_StartNext, Jobs_Update) builds the same ones for devices
 * on any MQTT library; the JSON it reads is scanned for the few fields it
 * needs.
 */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_RETRIES 5

struct device {
	const char *thing;
	char job[65];
	int retries;
	int done;       /* 0 running, else exit status + 1 */
	time_t retry_at; /* when to send the pending request again; 0: none */
	int pending;    /* the request to send again: 's' start-next, 'u' update */
};

/* field copies the string value of "name" in json into out. */
static int field(const char *json, const char *name, char *out, size_t size)
{
	char key[64];
	snprintf(key, sizeof key, "\"%s\":\"", name);
	const char *p = strstr(json, key);
	if (p == NULL)
		return 0;
	p += strlen(key);
	size_t n = strcspn(p, "\"");
	if (n >= size)
		return 0;
	memcpy(out, p, n);
	out[n] = '\0';
	return 1;
}

static void publish(struct mosquitto *m, struct device *d, int what)
{
	char topic[256], body[256];
	if (what == 's') {
		snprintf(topic, sizeof topic, "$aws/things/%s/jobs/start-next", d->thing);
		snprintf(body, sizeof body, "{\"clientToken\":\"%s-start\"}", d->thing);
	} else {
		snprintf(topic, sizeof topic, "$aws/things/%s/jobs/%s/update", d->thing, d->job);
		snprintf(body, sizeof body,
			 "{\"status\":\"SUCCEEDED\",\"statusDetails\":{\"result\":\"installed\"},\"clientToken\":\"%s-update\"}",
			 d->thing);
	}
	printf("-> %s %s\n", topic, body);
	mosquitto_publish(m, NULL, topic, (int)strlen(body), body, 1, false);
}

/* rejected retries a retryable rejection after a back-off, or gives up. */
static void rejected(struct device *d, const char *json, int what)
{
	char code[64] = "";
	field(json, "code", code, sizeof code);
	if ((strcmp(code, "InternalError") == 0 || strcmp(code, "RequestThrottled") == 0) && d->retries < MAX_RETRIES) {
		d->retries++;
		d->pending = what;
		d->retry_at = time(NULL) + d->retries; /* 1 s, 2 s, ... */
		printf("   %s: retrying in %d s\n", code, d->retries);
		return;
	}
	fprintf(stderr, "jobs-device: rejected %s\n", code);
	d->done = 2;
}

static void on_message(struct mosquitto *m, void *ctx, const struct mosquitto_message *msg)
{
	struct device *d = ctx;
	const char *json = msg->payloadlen > 0 ? msg->payload : "";
	const char *topic = msg->topic;
	size_t n = strlen(topic);
	printf("<- %s %.*s\n", topic, msg->payloadlen, json);
#define ENDS(s) (n >= strlen(s) && strcmp(topic + n - strlen(s), s) == 0)
	if (ENDS("/start-next/accepted")) {
		if (!field(json, "jobId", d->job, sizeof d->job)) {
			fprintf(stderr, "jobs-device: no job is pending\n");
			d->done = 2;
			return;
		}
		/* Here the device would act on the job document. */
		publish(m, d, 'u');
	} else if (ENDS("/start-next/rejected")) {
		rejected(d, json, 's');
	} else if (ENDS("/update/accepted")) {
		printf("job %s: SUCCEEDED\n", d->job);
		d->done = 1;
	} else if (ENDS("/update/rejected")) {
		rejected(d, json, 'u');
	}
}

static void on_subscribe(struct mosquitto *m, void *ctx, int mid, int n, const int *qos)
{
	(void)mid, (void)n, (void)qos;
	publish(m, ctx, 's'); /* subscribed to the replies: ask for the next job */
}

static void on_connect(struct mosquitto *m, void *ctx, int rc)
{
	struct device *d = ctx;
	char filter[256];
	if (rc != 0) {
		fprintf(stderr, "jobs-device: CONNECT refused: %s\n", mosquitto_connack_string(rc));
		return; /* the loop reconnects */
	}
	snprintf(filter, sizeof filter, "$aws/things/%s/jobs/#", d->thing);
	mosquitto_subscribe(m, NULL, filter, 1);
}

int main(int argc, char **argv)
{
	const char *host = "localhost";
	int port = 1883, opt;
	struct device d = {.thing = NULL};
	while ((opt = getopt(argc, argv, "h:p:i:")) != -1) {
		switch (opt) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'i': d.thing = optarg; break;
		default: goto usage;
		}
	}
	if (d.thing == NULL) {
usage:
		fprintf(stderr, "usage: jobs-device [-h HOST] [-p PORT] -i THING\n");
		return 64;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	mosquitto_lib_init();
	struct mosquitto *m = mosquitto_new(d.thing, true, &d);
	mosquitto_connect_callback_set(m, on_connect);
	mosquitto_subscribe_callback_set(m, on_subscribe);
	mosquitto_message_callback_set(m, on_message);
	if (mosquitto_connect(m, host, port, 30) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "jobs-device: cannot connect to %s:%d\n", host, port);
		return 1;
	}
	time_t deadline = time(NULL) + 20;
	while (!d.done && time(NULL) < deadline) {
		if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS) {
			sleep(1);
			mosquitto_reconnect(m);
		}
		if (d.retry_at != 0 && time(NULL) >= d.retry_at) {
			d.retry_at = 0;
			publish(m, &d, d.pending);
		}
	}
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	if (!d.done) {
		fprintf(stderr, "jobs-device: no answer within 20 s\n");
		return 2;
	}
	return d.done - 1;
}
