package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/jobsbroker/jobsbroker/broker/auth"
)

var passwdCmd = &command{
	name:     "passwd",
	synopsis: "-file FILE THING",
	short:    "set a thing's password in a password file",
	long: `
Passwd adds THING to the password file of -identity password, or replaces
its password, as a bcrypt hash. On a terminal it asks for the password
twice without echoing it; otherwise it reads the first line of standard
input, so that the password appears in no process list or shell history:

	printf '%s\n' "$PASSWORD" | jobsbroker passwd -file passwords pump-42

The file is replaced in one step, so a broker reloading it on SIGHUP never
reads half of it.`,
	flags: func(c *cli) (*flag.FlagSet, func(context.Context, []string) error) {
		fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
		file := fs.String("file", "", "password file to create or update (required)")
		return fs, func(ctx context.Context, args []string) error {
			if *file == "" || len(args) != 1 {
				return &usageError{cmd: "passwd", err: errors.New("passwd needs -file FILE and one thing name")}
			}
			pw, err := readPassword(ctx, c, args[0])
			if err != nil {
				return err
			}
			return passwd(*file, args[0], pw, c.stdout)
		}
	},
}

// readPassword asks for the password on a terminal, twice and without
// echo, or reads the first line of a standard input that is not one.
func readPassword(ctx context.Context, c *cli, thing string) ([]byte, error) {
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pw, err := prompt(ctx, c, int(f.Fd()), "Password for "+thing+": ")
		if err != nil {
			return nil, err
		}
		again, err := prompt(ctx, c, int(f.Fd()), "Retype it: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the two passwords differ; nothing changed")
		}
		if len(pw) == 0 {
			return nil, errors.New("empty password; nothing changed")
		}
		return pw, nil
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read the password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty password on standard input; nothing changed")
	}
	return []byte(line), nil
}

// prompt reads one line from the terminal fd with echo off. SIGINT ends
// the process's context rather than the process, so an interrupt restores
// the terminal here.
func prompt(ctx context.Context, c *cli, fd int, text string) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("read the password: %w", err)
	}
	fmt.Fprint(c.stderr, text)
	type result struct {
		pw  []byte
		err error
	}
	read := make(chan result, 1)
	go func() {
		pw, err := term.ReadPassword(fd)
		read <- result{pw, err}
	}()
	select {
	case r := <-read:
		fmt.Fprintln(c.stderr)
		if r.err != nil {
			return nil, fmt.Errorf("read the password: %w", r.err)
		}
		return r.pw, nil
	case <-ctx.Done():
		term.Restore(fd, state)
		fmt.Fprintln(c.stderr)
		return nil, errors.New("interrupted; nothing changed")
	}
}

// passwd adds or replaces a thing's line in a password file.
func passwd(file, thing string, pw []byte, stdout io.Writer) error {
	line, err := auth.PasswordLine(thing, pw)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(file)
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
	tmp, err := os.CreateTemp(filepath.Dir(file), ".passwd-*")
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
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	verb := "added"
	if replaced {
		verb = "replaced"
	}
	_, err = fmt.Fprintf(stdout, "%s the password of %s in %s\n", verb, thing, file)
	return err
}
