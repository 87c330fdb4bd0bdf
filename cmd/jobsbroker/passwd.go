package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jobsbroker/jobsbroker/broker/auth"
)

// passwd adds or replaces a thing's line in a password file (identity
// password). The password is the first line of standard input, so that it
// appears in no process list or shell history.
func passwd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("jobsbroker passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "password file to create or update")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: jobsbroker passwd -file FILE THING   (reads the password from standard input)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || fs.NArg() != 1 {
		fs.Usage()
		return errors.New("passwd needs -file and one thing name")
	}
	thing := fs.Arg(0)
	pw, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the password: %w", err)
	}
	pw = strings.TrimRight(pw, "\r\n")
	if pw == "" {
		return errors.New("empty password on standard input")
	}
	line, err := auth.PasswordLine(thing, []byte(pw))
	if err != nil {
		return err
	}
	old, err := os.ReadFile(*file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read password file: %w", err)
	}
	var out []string
	replaced := false
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && name == thing {
			l, replaced = line, true
		}
		if l != "" || len(out) > 0 {
			out = append(out, l)
		}
	}
	if !replaced {
		out = append(out, line)
	}
	// Write beside the file and rename, so that a broker reloading on
	// SIGHUP never reads half a file.
	tmp, err := os.CreateTemp(filepath.Dir(*file), ".passwd-*")
	if err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strings.Join(out, "\n") + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("write password file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *file); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	verb := "added"
	if replaced {
		verb = "replaced"
	}
	_, err = fmt.Fprintf(stdout, "%s the password of %s in %s\n", verb, thing, *file)
	return err
}
