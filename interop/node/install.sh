#!/usr/bin/env bash
# Installs the npm packages of the interop suite into interop/node/node_modules,
# exactly as pinned in package-lock.json: the device SDK (interop/node_test.go)
# and the AWS SDK for JavaScript v3's IoT clients (interop/signatures_scripts_test.go).
#
# Idempotent and quiet: it does nothing when node_modules already matches the
# lock file, prints only errors, and exits non-zero when the install fails or
# the native aws-crt binding that ships inside the package does not load.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

for tool in node npm; do
	if ! command -v "$tool" >/dev/null; then
		echo "interop/node/install.sh: $tool is not installed (Node.js 18 or later with npm; Debian: apt-get install nodejs npm)" >&2
		exit 1
	fi
done

stamp=node_modules/.jobsbroker-install-stamp
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1) $(node --version)"
if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]] && node -e 'require("aws-iot-device-sdk-v2"); require("@aws-sdk/client-iot"); require("@aws-sdk/client-iot-jobs-data-plane")' 2>/dev/null; then
	exit 0
fi

# aws-crt's install script only checks that its prebuilt binding exists (it
# builds from source otherwise, which needs the network beyond npm); the
# binding for linux-x64/arm64 ships inside the package, so skip scripts.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

# The native binding must load on this Node.js, and the JavaScript SDK's
# clients must be there.
node -e '
const crt = require("aws-crt");
const sdk = require("aws-iot-device-sdk-v2");
if (typeof crt.mqtt5.Mqtt5Client !== "function" || typeof sdk.iotjobs.IotJobsClientv2 !== "function") {
	throw new Error("aws-iot-device-sdk-v2 is incomplete");
}
if (typeof require("@aws-sdk/client-iot").IoTClient !== "function" ||
	typeof require("@aws-sdk/client-iot-jobs-data-plane").IoTJobsDataPlaneClient !== "function") {
	throw new Error("the AWS SDK for JavaScript v3 IoT clients are incomplete");
}
new crt.io.ClientBootstrap();
'
echo "$want" >"$stamp"
