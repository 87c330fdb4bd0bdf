// Package mqttlisten holds the broker's own MQTT listeners (TCP, TLS and
// WebSocket), which it gives mochi in place of mochi's: writes to a client
// never wait for it (what its socket does not take waits in memory, and a
// client that takes none of it for the write timeout is disconnected), a
// new connection must finish its TLS handshake
// and send CONNECT in time, a listener serves a bounded number of
// connections and survives accept errors, a reply and the request's PUBACK
// can leave in one write, and on close a listener ends its connections
// itself and waits for mochi to finish with them. Each connection says
// when mochi has finished with it (Done), for the auth hook.
package mqttlisten
