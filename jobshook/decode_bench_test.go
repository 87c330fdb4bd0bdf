package jobshook

import "testing"

// BenchmarkDecodeRequest decodes the two requests of a device's jobs
// cycle as jobsbench's devices send them: start-next with statusDetails,
// and an update with status, statusDetails and expectedVersion.
func BenchmarkDecodeRequest(b *testing.B) {
	start := []byte(`{"clientToken":"dev-17-000042","statusDetails":{"step":"download"},"stepTimeoutInMinutes":10}`)
	update := []byte(`{"clientToken":"dev-17-000043","status":"SUCCEEDED","statusDetails":{"step":"done","progress":"100"},"expectedVersion":2}`)
	b.ReportAllocs()
	for b.Loop() {
		req, rej := decodeRequest(start)
		if rej != nil {
			b.Fatal(rej.message)
		}
		if _, rej = req.startNextInput("thing-1"); rej != nil {
			b.Fatal(rej.message)
		}
		if req, rej = decodeRequest(update); rej != nil {
			b.Fatal(rej.message)
		}
		if _, _, rej = req.updateInput("thing-1", "job-1"); rej != nil {
			b.Fatal(rej.message)
		}
	}
}
