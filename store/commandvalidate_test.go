package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCommandFormat(t *testing.T) {
	for ct, want := range map[string]string{"application/json": "json", "Application/JSON": "json", "application/cbor": "cbor",
		"text/plain": "", "": "", "application/octet-stream": ""} {
		if got := CommandFormat(ct); got != want {
			t.Errorf("CommandFormat(%q) = %q, want %q", ct, got, want)
		}
	}
}

func TestParseCommandTargetARN(t *testing.T) {
	for arn, want := range map[string]CommandTarget{
		"arn:aws:iot:eu-west-1:111122223333:thing/T1":     {CommandTargetThing, "T1"},
		"arn:aws:iot:eu-west-1:111122223333:client/dev-7": {CommandTargetClient, "dev-7"},
	} {
		if got, err := ParseCommandTargetARN(arn); err != nil || got != want {
			t.Errorf("%s: %+v %v", arn, got, err)
		}
	}
	for _, arn := range []string{"arn:aws:iot:r:a:thinggroup/g", "arn:aws:iot:r:a:client/a/b", "arn:aws:iot:r:a:client/+", "thing/T1", ""} {
		if _, err := ParseCommandTargetARN(arn); err == nil {
			t.Errorf("%q accepted", arn)
		}
	}
}

// FuzzCommandTemplate checks that a dynamic command whose template and
// parameter value pass validation always renders to valid JSON (and to
// CBOR without panicking), and that validation never panics.
func FuzzCommandTemplate(f *testing.F) {
	f.Add(`{"a":"${aws:iot:commandexecution::parameter:p}","b":"x ${aws:iot:commandexecution::parameter:p} y"}`, "STRING", "hello")
	f.Add(`{"t":"${aws:iot:commandexecution::executionTimeoutSec}","p":["${aws:iot:commandexecution::parameter:p}"]}`, "INTEGER", "42")
	f.Add(`{"${aws:iot:commandexecution::parameter:p}":1}`, "BOOLEAN", "true")
	f.Add(`{"d":"${aws:iot:commandexecution::parameter:p}"}`, "DOUBLE", "1e300")
	f.Add(`{"u":"${aws:iot:commandexecution::parameter:p}"}`, "UNSIGNEDLONG", "18446744073709551615")
	f.Add(`{"bin":"${aws:iot:commandexecution::parameter:p}"}`, "BINARY", "\x00\xff")
	f.Fuzz(func(t *testing.T, template, typ, value string) {
		p := CommandParameter{Name: "p", Type: typ}
		v := CommandParameterValue{}
		switch typ {
		case "STRING":
			v.S = &value
		case "BOOLEAN":
			b := value == "true"
			v.B = &b
		case "INTEGER":
			var n int32
			if json.Unmarshal([]byte(value), &n) != nil {
				return
			}
			v.I = &n
		case "DOUBLE":
			var d float64
			if json.Unmarshal([]byte(value), &d) != nil {
				return
			}
			v.D = &d
		case "UNSIGNEDLONG":
			v.UL = &value
		case "BINARY":
			v.BIN = []byte(value)
		default:
			return
		}
		p.DefaultValue = &v
		for _, format := range []string{"JSON", "CBOR"} {
			c := &Command{CommandID: "c", PayloadTemplate: template, MandatoryParameters: []CommandParameter{p},
				Preprocessor: &CommandPreprocessor{AwsJSONSubstitution: &AwsJSONSubstitution{OutputFormat: format}}}
			if ValidateCreateCommand(c) != nil {
				return
			}
			params, err := ResolveCommandParameters(c, nil)
			if err != nil {
				return
			}
			req, err := RenderCommandRequest(c, params, 10, time.Time{})
			if err != nil {
				continue // too large once substituted
			}
			if format == "JSON" && !json.Valid(req.Payload) {
				t.Fatalf("template %q rendered invalid JSON %q", template, req.Payload)
			}
			if format == "CBOR" && (len(req.Payload) == 0 || bytes.Equal(req.Payload, []byte("null"))) {
				t.Fatalf("template %q rendered no CBOR", template)
			}
		}
	})
}

// TestCommandTemplateLimits: a template's 32,768 are characters (code
// points), as the model counts them; mandatoryParameters stop at 1,000.
func TestCommandTemplateLimits(t *testing.T) {
	template := func(chars int) string {
		head := `{"p":"${aws:iot:commandexecution::parameter:p}","pad":"`
		return head + strings.Repeat("€", chars-len(head)-2) + `"}`
	}
	command := func(tpl string, params int) *Command {
		c := &Command{CommandID: "c", PayloadTemplate: tpl,
			Preprocessor: &CommandPreprocessor{AwsJSONSubstitution: &AwsJSONSubstitution{OutputFormat: "JSON"}}}
		for i := range params {
			name := "p"
			if i > 0 {
				name = fmt.Sprintf("q%d", i)
			}
			c.MandatoryParameters = append(c.MandatoryParameters, CommandParameter{Name: name, Type: "STRING"})
		}
		return c
	}
	if err := ValidateCreateCommand(command(template(MaxCommandTemplateLength), 1)); err != nil {
		t.Errorf("a template of %d characters (%d bytes): %v", MaxCommandTemplateLength, len(template(MaxCommandTemplateLength)), err)
	}
	if err := ValidateCreateCommand(command(template(MaxCommandTemplateLength+1), 1)); err == nil {
		t.Errorf("a template of %d characters was accepted", MaxCommandTemplateLength+1)
	}
	if err := ValidateCreateCommand(command(template(100), 1000)); err != nil {
		t.Errorf("1,000 mandatoryParameters: %v", err)
	}
	if err := ValidateCreateCommand(command(template(100), 1001)); err == nil {
		t.Error("1,001 mandatoryParameters were accepted")
	}
}

// TestCommandTemplateOneDocument: a payloadTemplate is one JSON document;
// anything but whitespace after it is refused at creation.
func TestCommandTemplateOneDocument(t *testing.T) {
	for tpl, ok := range map[string]bool{
		`{"p":"${aws:iot:commandexecution::parameter:p}"}`:        true,
		"{\"p\":\"${aws:iot:commandexecution::parameter:p}\"} \n": true,
		`"${aws:iot:commandexecution::parameter:p}"A`:             false,
		`{"p":"${aws:iot:commandexecution::parameter:p}"}{}`:      false,
		`{"p":"${aws:iot:commandexecution::parameter:p}"} x`:      false,
	} {
		c := &Command{CommandID: "c", PayloadTemplate: tpl, MandatoryParameters: []CommandParameter{{Name: "p", Type: "STRING"}},
			Preprocessor: &CommandPreprocessor{AwsJSONSubstitution: &AwsJSONSubstitution{OutputFormat: "JSON"}}}
		if err := ValidateCreateCommand(c); (err == nil) != ok {
			t.Errorf("template %q: error %v, want accepted=%v", tpl, err, ok)
		}
	}
}
