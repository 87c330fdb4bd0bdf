package broker

import (
	"fmt"
	"net/http"
	"net/http/pprof"
)

// listenPprof binds the profiling listener when PprofAddr is set.
func (b *Broker) listenPprof() error {
	if b.cfg.PprofAddr == "" {
		return nil
	}
	if !loopback(b.cfg.PprofAddr) && !b.cfg.AllowAnonymous {
		return fmt.Errorf("%s %q: the profiling endpoints take no credentials; bind them to 127.0.0.1 or set %s",
			b.cfg.name("pprof_addr"), b.cfg.PprofAddr, b.cfg.name("allow_anonymous"))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s, err := b.listenHTTP("pprof", b.cfg.PprofAddr, mux, nil)
	if err != nil {
		return err
	}
	// A CPU profile takes as long as it is asked to.
	s.WriteTimeout = 0
	b.pprof = s
	return nil
}

// PprofAddr returns the bound address of the profiling listener, "" when
// it is off.
func (b *Broker) PprofAddr() string {
	if b.pprof == nil {
		return ""
	}
	return b.pprof.ln.Addr().String()
}
