package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of AWS IoT commands (COMMANDS.md §5).
const (
	MaxCommandPayloadBytes       = 32 << 10
	MaxCommandTemplateLength     = 32768
	MaxCommandDisplayNameLength  = 64
	MaxCommandDescriptionLength  = 2028
	MaxCommandParameterNameLen   = 192
	MaxCommandOperands           = 10
	MaxCommandReasonCodeLength   = 64
	MaxCommandReasonDescLength   = 1024
	MaxCommandResultNameLength   = 32
	MaxCommandClientTokenLength  = 64
	MaxCommandTargetArnLength    = 2048
	MaxCommandListResults        = 100
	DefaultCommandListResults    = 25
	DefaultCommandContentType    = "application/octet-stream"
	commandParameterPlaceholder  = "${aws:iot:commandexecution::parameter:"
	commandTimeoutPlaceholder    = "${aws:iot:commandexecution::executionTimeoutSec}"
	maxCommandParameterListItems = 1000 // ours: the model sets no maximum
)

var (
	commandIDPattern     = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	parameterNamePattern = regexp.MustCompile(`^[.$a-zA-Z0-9_-]+$`)
	reasonCodePattern    = regexp.MustCompile(`^[A-Z0-9_-]+$`)
	resultNamePattern    = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,32}$`)
	tagKeyPattern        = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	unsignedPattern      = regexp.MustCompile(`^[0-9]{1,20}$`)
)

// ValidCommandID reports whether id is a valid commandId or executionId.
func ValidCommandID(id string) bool { return commandIDPattern.MatchString(id) }

// ValidateCommandID checks a commandId.
func ValidateCommandID(field, id string) error {
	if !ValidCommandID(id) {
		return Errorf(ErrInvalidRequest, "%s %q must be 1-64 characters from [a-zA-Z0-9_-]", field, id)
	}
	return nil
}

// noControl reports whether s is UTF-8 without control or format
// characters (the pattern [^\p{C}]*).
func noControl(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r < 0xa0 || r == 0xad || r >= 0x200b && r <= 0x200f || r >= 0x202a && r <= 0x202e || r >= 0x2060 && r <= 0x206f || r == 0xfeff || r >= 0xe000 && r <= 0xf8ff {
			return false
		}
	}
	return true
}

func validateCommandText(field, s string, max int) error {
	if utf8.RuneCountInString(s) > max {
		return Errorf(ErrInvalidRequest, "%s must be at most %d characters", field, max)
	}
	if !noControl(s) {
		return Errorf(ErrInvalidRequest, "%s must not contain control characters", field)
	}
	return nil
}

// ValidateCreateCommand checks a CreateCommand request and fills in its
// defaults (the namespace, the payload's content type).
func ValidateCreateCommand(c *Command) error {
	if err := ValidateCommandID("commandId", c.CommandID); err != nil {
		return err
	}
	switch c.Namespace {
	case "":
		c.Namespace = CommandNamespaceIoT
	case CommandNamespaceIoT:
	case CommandNamespaceFleetWise:
		return Errorf(ErrInvalidRequest, "namespace %s is not supported by this broker", c.Namespace)
	default:
		return Errorf(ErrInvalidRequest, "namespace %q must be AWS-IoT or AWS-IoT-FleetWise", c.Namespace)
	}
	if err := validateCommandText("displayName", c.DisplayName, MaxCommandDisplayNameLength); err != nil {
		return err
	}
	if err := validateCommandText("description", c.Description, MaxCommandDescriptionLength); err != nil {
		return err
	}
	if c.RoleArn != "" {
		return Errorf(ErrInvalidRequest, "roleArn is not supported in the AWS-IoT namespace")
	}
	for _, t := range c.Tags {
		if n := utf8.RuneCountInString(t.Key); n < 1 || n > 128 || !tagKeyPattern.MatchString(t.Key) {
			return Errorf(ErrInvalidRequest, "tag key %q must be 1-128 characters from [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]", t.Key)
		}
		if utf8.RuneCountInString(t.Value) > 256 {
			return Errorf(ErrInvalidRequest, "tag value of %q must be at most 256 characters", t.Key)
		}
	}
	switch {
	case c.Payload != nil && c.PayloadTemplate != "":
		return Errorf(ErrInvalidRequest, "give either payload or payloadTemplate, not both")
	case c.Payload != nil:
		if c.Preprocessor != nil || len(c.MandatoryParameters) > 0 {
			return Errorf(ErrInvalidRequest, "preprocessor and mandatoryParameters apply only to a payloadTemplate")
		}
		if len(c.Payload.Content) > MaxCommandPayloadBytes {
			return Errorf(ErrInvalidRequest, "payload content is %d bytes; the limit is %d", len(c.Payload.Content), MaxCommandPayloadBytes)
		}
		if c.Payload.ContentType == "" {
			c.Payload.ContentType = DefaultCommandContentType
		}
		if !noControl(c.Payload.ContentType) || len(c.Payload.ContentType) > 1024 {
			return Errorf(ErrInvalidRequest, "payload contentType %q is not valid", c.Payload.ContentType)
		}
		return nil
	case c.PayloadTemplate != "":
		return validateTemplate(c)
	}
	return Errorf(ErrInvalidRequest, "a command in the AWS-IoT namespace needs a payload or a payloadTemplate")
}

// parameterTypes maps a parameter type to the value member it takes.
var parameterTypes = map[string]string{
	"STRING": "S", "INTEGER": "I", "DOUBLE": "D", "LONG": "L", "UNSIGNEDLONG": "UL", "BOOLEAN": "B", "BINARY": "BIN",
}

var comparisonOperators = []string{"EQUALS", "NOT_EQUALS", "LESS_THAN", "LESS_THAN_EQUALS", "GREATER_THAN",
	"GREATER_THAN_EQUALS", "IN_SET", "NOT_IN_SET", "IN_RANGE", "NOT_IN_RANGE"}

func validateTemplate(c *Command) error {
	if utf8.RuneCountInString(c.PayloadTemplate) > MaxCommandTemplateLength {
		return Errorf(ErrInvalidRequest, "payloadTemplate must be at most %d characters", MaxCommandTemplateLength)
	}
	if c.Preprocessor == nil || c.Preprocessor.AwsJSONSubstitution == nil {
		return Errorf(ErrInvalidRequest, "a payloadTemplate needs a preprocessor with awsJsonSubstitution")
	}
	switch c.Preprocessor.AwsJSONSubstitution.OutputFormat {
	case "JSON", "CBOR":
	default:
		return Errorf(ErrInvalidRequest, "awsJsonSubstitution outputFormat %q must be JSON or CBOR", c.Preprocessor.AwsJSONSubstitution.OutputFormat)
	}
	if len(c.MandatoryParameters) == 0 {
		return Errorf(ErrInvalidRequest, "a payloadTemplate needs at least one mandatoryParameters entry")
	}
	if len(c.MandatoryParameters) > maxCommandParameterListItems {
		return Errorf(ErrInvalidRequest, "mandatoryParameters has %d entries; this broker takes at most %d", len(c.MandatoryParameters), maxCommandParameterListItems)
	}
	names := map[string]bool{}
	for i := range c.MandatoryParameters {
		p := &c.MandatoryParameters[i]
		if err := validateParameter(p); err != nil {
			return err
		}
		if names[p.Name] {
			return Errorf(ErrInvalidRequest, "mandatoryParameters name %q appears twice", p.Name)
		}
		names[p.Name] = true
	}
	tree, err := parseTemplate(c.PayloadTemplate)
	if err != nil {
		return Errorf(ErrInvalidRequest, "payloadTemplate is not valid JSON: %v", err)
	}
	used := map[string]bool{}
	placeholders := 0
	tree.walkStrings(func(s string) {
		for _, name := range placeholderNames(s) {
			placeholders++
			if name != "" {
				used[name] = true
			}
		}
	})
	if placeholders == 0 {
		return Errorf(ErrInvalidRequest, "payloadTemplate has no placeholder")
	}
	for name := range used {
		if !names[name] {
			return Errorf(ErrInvalidRequest, "payloadTemplate uses parameter %q, which is not in mandatoryParameters", name)
		}
	}
	return nil
}

func validateParameter(p *CommandParameter) error {
	if n := len(p.Name); n < 1 || n > MaxCommandParameterNameLen || !parameterNamePattern.MatchString(p.Name) {
		return Errorf(ErrInvalidRequest, "parameter name %q must be 1-192 characters from [.$a-zA-Z0-9_-]", p.Name)
	}
	if err := validateCommandText("parameter description", p.Description, MaxCommandDescriptionLength); err != nil {
		return err
	}
	if p.Type != "" {
		if _, ok := parameterTypes[p.Type]; !ok {
			return Errorf(ErrInvalidRequest, "parameter %s: type %q must be one of STRING, INTEGER, DOUBLE, LONG, UNSIGNEDLONG, BOOLEAN, BINARY", p.Name, p.Type)
		}
	}
	for _, v := range []*CommandParameterValue{p.Value, p.DefaultValue} {
		if v == nil {
			continue
		}
		if err := checkValue(p, v); err != nil {
			return err
		}
	}
	if len(p.ValueConditions) > 0 {
		typ := parameterType(p)
		for _, vc := range p.ValueConditions {
			if err := validateCondition(p.Name, typ, &vc); err != nil {
				return err
			}
		}
		if p.DefaultValue != nil {
			if err := checkConditions(p, p.DefaultValue); err != nil {
				return err
			}
		}
	}
	return nil
}

// parameterType is a parameter's declared type, or the one its default
// value implies.
func parameterType(p *CommandParameter) string {
	if p.Type != "" {
		return p.Type
	}
	for _, v := range []*CommandParameterValue{p.DefaultValue, p.Value} {
		if v == nil {
			continue
		}
		m := valueMember(v)
		for t, mm := range parameterTypes {
			if mm == m {
				return t
			}
		}
	}
	return ""
}

func validateCondition(name, typ string, vc *CommandParameterValueCondition) error {
	if !slices.Contains(comparisonOperators, vc.ComparisonOperator) {
		return Errorf(ErrInvalidRequest, "parameter %s: comparisonOperator %q is not valid", name, vc.ComparisonOperator)
	}
	switch typ {
	case "BOOLEAN", "BINARY":
		return Errorf(ErrInvalidRequest, "parameter %s: a %s parameter takes no valueConditions", name, typ)
	case "STRING":
		if !slices.Contains([]string{"EQUALS", "NOT_EQUALS", "IN_SET", "NOT_IN_SET"}, vc.ComparisonOperator) {
			return Errorf(ErrInvalidRequest, "parameter %s: comparisonOperator %s does not apply to a STRING", name, vc.ComparisonOperator)
		}
	}
	o := &vc.Operand
	set := 0
	for _, b := range []bool{o.Number != nil, len(o.Numbers) > 0, o.String != nil, len(o.Strings) > 0, o.NumberRange != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return Errorf(ErrInvalidRequest, "parameter %s: a condition's operand needs exactly one of number, numbers, string, strings, numberRange", name)
	}
	if len(o.Numbers) > MaxCommandOperands || len(o.Strings) > MaxCommandOperands {
		return Errorf(ErrInvalidRequest, "parameter %s: an operand list holds 1-%d entries", name, MaxCommandOperands)
	}
	op := vc.ComparisonOperator
	numeric := typ != "STRING"
	var want string
	switch {
	case op == "IN_RANGE" || op == "NOT_IN_RANGE":
		want = "numberRange"
	case op == "IN_SET" || op == "NOT_IN_SET":
		want = map[bool]string{true: "numbers", false: "strings"}[numeric]
	default:
		want = map[bool]string{true: "number", false: "string"}[numeric]
	}
	got := map[bool]string{o.Number != nil: "number", len(o.Numbers) > 0: "numbers", o.String != nil: "string",
		len(o.Strings) > 0: "strings", o.NumberRange != nil: "numberRange"}[true]
	if typ != "" && got != want {
		return Errorf(ErrInvalidRequest, "parameter %s: comparisonOperator %s takes a %s operand", name, op, want)
	}
	nums := o.Numbers
	if o.Number != nil {
		nums = []string{*o.Number}
	}
	if o.NumberRange != nil {
		nums = []string{o.NumberRange.Min, o.NumberRange.Max}
	}
	for _, n := range nums {
		if _, ok := new(big.Rat).SetString(n); !ok {
			return Errorf(ErrInvalidRequest, "parameter %s: operand %q is not a number", name, n)
		}
	}
	return nil
}

// valueMember names the one member v sets ("" when none or several).
func valueMember(v *CommandParameterValue) string {
	var set []string
	if v.S != nil {
		set = append(set, "S")
	}
	if v.B != nil {
		set = append(set, "B")
	}
	if v.I != nil {
		set = append(set, "I")
	}
	if v.L != nil {
		set = append(set, "L")
	}
	if v.D != nil {
		set = append(set, "D")
	}
	if v.BIN != nil {
		set = append(set, "BIN")
	}
	if v.UL != nil {
		set = append(set, "UL")
	}
	if len(set) != 1 {
		return ""
	}
	return set[0]
}

// checkValue checks that v is one well-formed value of p's type.
func checkValue(p *CommandParameter, v *CommandParameterValue) error {
	m := valueMember(v)
	if m == "" {
		return Errorf(ErrInvalidRequest, "parameter %s: a value sets exactly one of S, B, I, L, D, BIN, UL", p.Name)
	}
	if p.Type != "" && parameterTypes[p.Type] != m {
		return Errorf(ErrInvalidRequest, "parameter %s is of type %s: its value must set %s, not %s", p.Name, p.Type, parameterTypes[p.Type], m)
	}
	switch {
	case v.S != nil && *v.S == "":
		return Errorf(ErrInvalidRequest, "parameter %s: S must not be empty", p.Name)
	case v.BIN != nil && len(v.BIN) == 0:
		return Errorf(ErrInvalidRequest, "parameter %s: BIN must not be empty", p.Name)
	case v.UL != nil && !unsignedPattern.MatchString(*v.UL):
		return Errorf(ErrInvalidRequest, "parameter %s: UL must be 1-20 digits", p.Name)
	case v.UL != nil:
		if _, err := strconv.ParseUint(*v.UL, 10, 64); err != nil {
			return Errorf(ErrInvalidRequest, "parameter %s: UL %s does not fit an unsigned 64-bit integer", p.Name, *v.UL)
		}
	}
	return nil
}

// numberOf returns a numeric value as an exact rational.
func numberOf(v *CommandParameterValue) (*big.Rat, bool) {
	switch {
	case v.I != nil:
		return new(big.Rat).SetInt64(int64(*v.I)), true
	case v.L != nil:
		return new(big.Rat).SetInt64(*v.L), true
	case v.D != nil:
		r := new(big.Rat)
		if r.SetFloat64(*v.D) == nil {
			return nil, false
		}
		return r, true
	case v.UL != nil:
		return new(big.Rat).SetString(*v.UL)
	}
	return nil, false
}

// checkConditions checks a resolved value against p's valueConditions.
func checkConditions(p *CommandParameter, v *CommandParameterValue) error {
	for _, vc := range p.ValueConditions {
		ok, err := meets(v, &vc)
		if err != nil {
			return Errorf(ErrInvalidRequest, "parameter %s: %v", p.Name, err)
		}
		if !ok {
			return Errorf(ErrInvalidRequest, "parameter %s: value %s does not meet the condition %s", p.Name, describeValue(v), describeCondition(&vc))
		}
	}
	return nil
}

func meets(v *CommandParameterValue, vc *CommandParameterValueCondition) (bool, error) {
	o := &vc.Operand
	if v.S != nil {
		switch vc.ComparisonOperator {
		case "EQUALS", "NOT_EQUALS":
			if o.String == nil {
				return false, fmt.Errorf("a string condition needs a string operand")
			}
			return (*v.S == *o.String) == (vc.ComparisonOperator == "EQUALS"), nil
		case "IN_SET", "NOT_IN_SET":
			return slices.Contains(o.Strings, *v.S) == (vc.ComparisonOperator == "IN_SET"), nil
		}
		return false, fmt.Errorf("comparisonOperator %s does not apply to a string", vc.ComparisonOperator)
	}
	x, ok := numberOf(v)
	if !ok {
		return false, fmt.Errorf("comparisonOperator %s does not apply to this value", vc.ComparisonOperator)
	}
	num := func(s string) (*big.Rat, error) {
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return nil, fmt.Errorf("operand %q is not a number", s)
		}
		return r, nil
	}
	switch vc.ComparisonOperator {
	case "IN_SET", "NOT_IN_SET":
		in := false
		for _, s := range o.Numbers {
			r, err := num(s)
			if err != nil {
				return false, err
			}
			in = in || x.Cmp(r) == 0
		}
		return in == (vc.ComparisonOperator == "IN_SET"), nil
	case "IN_RANGE", "NOT_IN_RANGE":
		if o.NumberRange == nil {
			return false, fmt.Errorf("a range condition needs numberRange")
		}
		lo, err := num(o.NumberRange.Min)
		if err != nil {
			return false, err
		}
		hi, err := num(o.NumberRange.Max)
		if err != nil {
			return false, err
		}
		in := x.Cmp(lo) >= 0 && x.Cmp(hi) <= 0
		return in == (vc.ComparisonOperator == "IN_RANGE"), nil
	}
	if o.Number == nil {
		return false, fmt.Errorf("comparisonOperator %s needs a number operand", vc.ComparisonOperator)
	}
	r, err := num(*o.Number)
	if err != nil {
		return false, err
	}
	c := x.Cmp(r)
	switch vc.ComparisonOperator {
	case "EQUALS":
		return c == 0, nil
	case "NOT_EQUALS":
		return c != 0, nil
	case "LESS_THAN":
		return c < 0, nil
	case "LESS_THAN_EQUALS":
		return c <= 0, nil
	case "GREATER_THAN":
		return c > 0, nil
	case "GREATER_THAN_EQUALS":
		return c >= 0, nil
	}
	return false, fmt.Errorf("unknown comparisonOperator %s", vc.ComparisonOperator)
}

func describeValue(v *CommandParameterValue) string {
	s, _ := valueText(v)
	return s
}

func describeCondition(vc *CommandParameterValueCondition) string {
	b, _ := json.Marshal(vc.Operand)
	return vc.ComparisonOperator + " " + string(b)
}

// ValidateUpdateCommand checks an UpdateCommand request.
func ValidateUpdateCommand(in *UpdateCommandInput) error {
	if err := ValidateCommandID("commandId", in.CommandID); err != nil {
		return err
	}
	if in.DisplayName != nil {
		if err := validateCommandText("displayName", *in.DisplayName, MaxCommandDisplayNameLength); err != nil {
			return err
		}
	}
	if in.Description != nil {
		if err := validateCommandText("description", *in.Description, MaxCommandDescriptionLength); err != nil {
			return err
		}
	}
	return nil
}

// ValidateStartCommandExecution checks the fields of a
// StartCommandExecution request that need no stored state.
func ValidateStartCommandExecution(in *StartCommandExecutionInput) error {
	if in.ExecutionTimeoutSeconds == 0 {
		in.ExecutionTimeoutSeconds = DefaultCommandTimeoutSeconds
	}
	if in.ExecutionTimeoutSeconds < 1 || in.ExecutionTimeoutSeconds > MaxCommandTimeoutSeconds {
		return Errorf(ErrInvalidRequest, "executionTimeoutSeconds must be between 1 and %d", MaxCommandTimeoutSeconds)
	}
	if in.ClientToken != "" {
		if len(in.ClientToken) > MaxCommandClientTokenLength {
			return Errorf(ErrInvalidRequest, "clientToken must be at most %d characters", MaxCommandClientTokenLength)
		}
		for i := 0; i < len(in.ClientToken); i++ {
			if c := in.ClientToken[i]; c < 0x21 || c > 0x7e {
				return Errorf(ErrInvalidRequest, "clientToken must be printable ASCII without spaces")
			}
		}
	}
	if in.Parameters != nil && len(in.Parameters) == 0 {
		return Errorf(ErrInvalidRequest, "parameters must hold at least one entry when given")
	}
	for name := range in.Parameters {
		if n := len(name); n < 1 || n > MaxCommandParameterNameLen || !parameterNamePattern.MatchString(name) {
			return Errorf(ErrInvalidRequest, "parameter name %q must be 1-192 characters from [.$a-zA-Z0-9_-]", name)
		}
	}
	return nil
}

// CommandRequestHash identifies what a StartCommandExecution request asks
// for, to tell a retry (same hash) from a different request reusing a
// client token.
func CommandRequestHash(in *StartCommandExecutionInput) string {
	b, _ := json.Marshal(struct {
		C string                           `json:"c"`
		T CommandTarget                    `json:"t"`
		P map[string]CommandParameterValue `json:"p"`
		S int64                            `json:"s"`
	}{in.CommandID, in.Target, in.Parameters, in.ExecutionTimeoutSeconds})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ResolveCommandParameters checks a request's parameters against the
// command and returns the values the execution uses: given values, then
// defaults (COMMANDS.md §1.3).
func ResolveCommandParameters(c *Command, given map[string]CommandParameterValue) (map[string]CommandParameterValue, error) {
	if c.PayloadTemplate == "" {
		if len(given) > 0 {
			return nil, Errorf(ErrInvalidRequest, "command %s has a static payload and takes no parameters", c.CommandID)
		}
		return nil, nil
	}
	declared := map[string]*CommandParameter{}
	for i := range c.MandatoryParameters {
		declared[c.MandatoryParameters[i].Name] = &c.MandatoryParameters[i]
	}
	for name := range given {
		if declared[name] == nil {
			return nil, Errorf(ErrInvalidRequest, "command %s has no parameter %q", c.CommandID, name)
		}
	}
	out := make(map[string]CommandParameterValue, len(declared))
	for i := range c.MandatoryParameters {
		p := &c.MandatoryParameters[i]
		v, ok := given[p.Name]
		switch {
		case ok:
		case p.DefaultValue != nil:
			v = *p.DefaultValue
		default:
			return nil, Errorf(ErrInvalidRequest, "parameter %s has no value and no defaultValue", p.Name)
		}
		typed := *p
		typed.Type = parameterType(p)
		if err := checkValue(&typed, &v); err != nil {
			return nil, err
		}
		if err := checkConditions(p, &v); err != nil {
			return nil, err
		}
		out[p.Name] = v
	}
	return out, nil
}

// RenderCommandRequest makes the message an execution sends: a static
// command's payload as it is, or a dynamic command's template with its
// placeholders substituted, encoded as its preprocessor says.
func RenderCommandRequest(c *Command, params map[string]CommandParameterValue, timeoutSeconds int64, expires time.Time) (*CommandRequest, error) {
	if c.PayloadTemplate == "" {
		ct := DefaultCommandContentType
		var content []byte
		if c.Payload != nil {
			content = c.Payload.Content
			if c.Payload.ContentType != "" {
				ct = c.Payload.ContentType
			}
		}
		return &CommandRequest{Format: CommandFormat(ct), ContentType: ct, Payload: content, Expires: expires}, nil
	}
	tree, err := parseTemplate(c.PayloadTemplate)
	if err != nil {
		return nil, Errorf(ErrInvalidRequest, "payloadTemplate is not valid JSON: %v", err)
	}
	sub := func(name string) (*CommandParameterValue, bool) {
		if name == "" {
			t := timeoutSeconds
			return &CommandParameterValue{L: &t}, true
		}
		v, ok := params[name]
		return &v, ok
	}
	n, err := tree.substitute(sub)
	if err != nil {
		return nil, Errorf(ErrInvalidRequest, "%v", err)
	}
	req := &CommandRequest{Expires: expires}
	if c.Preprocessor.AwsJSONSubstitution.OutputFormat == "CBOR" {
		req.Format, req.ContentType, req.Payload = "cbor", "application/cbor", n.appendCBOR(nil)
	} else {
		req.Format, req.ContentType, req.Payload = "json", "application/json", n.appendJSON(nil)
	}
	if len(req.Payload) > MaxCommandPayloadBytes {
		return nil, Errorf(ErrInvalidRequest, "the substituted payload is %d bytes; the limit is %d", len(req.Payload), MaxCommandPayloadBytes)
	}
	return req, nil
}

// CommandFormat returns the request topic suffix for a content type.
func CommandFormat(contentType string) string {
	switch strings.ToLower(strings.TrimSpace(contentType)) {
	case "application/json":
		return "json"
	case "application/cbor":
		return "cbor"
	}
	return ""
}

// ValidateCommandUpdate checks a device's status report (COMMANDS.md §3.3):
// the checks that need no execution, made before it is looked up
// (§3.5 step 3).
func ValidateCommandUpdate(in *UpdateCommandExecutionInput) error {
	switch in.Status {
	case "":
		return Errorf(ErrInvalidRequest, "status is required")
	case CommandInProgress, CommandSucceeded, CommandFailed, CommandRejected, CommandTimedOut:
	default:
		// CREATED included: the broker sets it, a device never reports it.
		return Errorf(ErrInvalidRequest, "status %q is not one of IN_PROGRESS, SUCCEEDED, FAILED, REJECTED, TIMED_OUT", in.Status)
	}
	if r := in.StatusReason; r != nil {
		if len(r.ReasonCode) < 1 || len(r.ReasonCode) > MaxCommandReasonCodeLength || !reasonCodePattern.MatchString(r.ReasonCode) {
			return Errorf(ErrInvalidRequest, "statusReason.reasonCode must be 1-%d characters from [A-Z0-9_-]", MaxCommandReasonCodeLength)
		}
		if err := validateCommandText("statusReason.reasonDescription", r.ReasonDescription, MaxCommandReasonDescLength); err != nil {
			return err
		}
	}
	if in.Result != nil && len(in.Result) == 0 {
		return Errorf(ErrInvalidRequest, "result must hold at least one entry when given")
	}
	for k, v := range in.Result {
		if !resultNamePattern.MatchString(k) {
			return Errorf(ErrInvalidRequest, "result name %q must be 1-%d characters from [a-zA-Z0-9_-]", k, MaxCommandResultNameLength)
		}
		set := 0
		if v.S != nil {
			set++
			if *v.S == "" {
				return Errorf(ErrInvalidRequest, "result %s: s must not be empty", k)
			}
		}
		if v.B != nil {
			set++
		}
		if v.BIN != nil {
			set++
			if len(v.BIN) == 0 {
				return Errorf(ErrInvalidRequest, "result %s: bin must not be empty", k)
			}
		}
		if set != 1 {
			return Errorf(ErrInvalidRequest, "result %s must set exactly one of s, b, bin", k)
		}
	}
	return nil
}

// ---- templates ----

// jnode is a JSON value that keeps its object members in order.
type jnode struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null, 'x' raw bytes (CBOR byte string)
	keys []string
	vals []*jnode
	str  string
	num  json.Number
	b    bool
	raw  []byte
}

func parseTemplate(s string) (*jnode, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	n, err := parseNode(d, 0)
	if err != nil {
		return nil, err
	}
	// Only whitespace may follow the value: Token reports io.EOF then, and
	// any other answer (a second value, or bytes that are not JSON at all)
	// means the template is not one JSON document.
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("text after the JSON value")
	}
	return n, nil
}

func parseNode(d *json.Decoder, depth int) (*jnode, error) {
	if depth > 64 {
		return nil, fmt.Errorf("nested too deeply")
	}
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n := &jnode{kind: 'o'}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				c, err := parseNode(d, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys, n.vals = append(n.keys, k), append(n.vals, c)
			}
			_, err := d.Token()
			return n, err
		case '[':
			n := &jnode{kind: 'a'}
			for d.More() {
				c, err := parseNode(d, depth+1)
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, c)
			}
			_, err := d.Token()
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", v)
	case string:
		return &jnode{kind: 's', str: v}, nil
	case json.Number:
		return &jnode{kind: 'n', num: v}, nil
	case bool:
		return &jnode{kind: 'b', b: v}, nil
	case nil:
		return &jnode{kind: 'z'}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

func (n *jnode) walkStrings(fn func(string)) {
	switch n.kind {
	case 's':
		fn(n.str)
	case 'o':
		for i, k := range n.keys {
			fn(k)
			n.vals[i].walkStrings(fn)
		}
	case 'a':
		for _, c := range n.vals {
			c.walkStrings(fn)
		}
	}
}

// placeholderNames lists the placeholders in s: a parameter's name, or ""
// for the execution timeout.
func placeholderNames(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "${aws:iot:commandexecution::")
		if i < 0 {
			return out
		}
		s = s[i:]
		switch {
		case strings.HasPrefix(s, commandTimeoutPlaceholder):
			out = append(out, "")
			s = s[len(commandTimeoutPlaceholder):]
		case strings.HasPrefix(s, commandParameterPlaceholder):
			rest := s[len(commandParameterPlaceholder):]
			j := strings.IndexByte(rest, '}')
			if j < 0 {
				return out
			}
			out = append(out, rest[:j])
			s = rest[j+1:]
		default:
			s = s[2:]
		}
	}
}

// valueText is a value written into a longer string.
func valueText(v *CommandParameterValue) (string, bool) {
	switch {
	case v.S != nil:
		return *v.S, true
	case v.B != nil:
		return strconv.FormatBool(*v.B), true
	case v.I != nil:
		return strconv.FormatInt(int64(*v.I), 10), true
	case v.L != nil:
		return strconv.FormatInt(*v.L, 10), true
	case v.D != nil:
		return strconv.FormatFloat(*v.D, 'g', -1, 64), true
	case v.UL != nil:
		return *v.UL, true
	case v.BIN != nil:
		return base64.StdEncoding.EncodeToString(v.BIN), true
	}
	return "", false
}

// typedNode is the JSON value a placeholder that is a whole string
// becomes: a number, a boolean, a string, or (BIN) a byte string in CBOR
// and base64 text in JSON.
func typedNode(v *CommandParameterValue) *jnode {
	switch {
	case v.B != nil:
		return &jnode{kind: 'b', b: *v.B}
	case v.I != nil, v.L != nil, v.UL != nil, v.D != nil:
		s, _ := valueText(v)
		if v.UL != nil {
			// "007" passes the model's pattern but is not a JSON number:
			// the number node carries the value without its leading zeros.
			if n, err := strconv.ParseUint(s, 10, 64); err == nil {
				s = strconv.FormatUint(n, 10)
			}
		}
		if v.D != nil && (strings.ContainsAny(s, "IN") || strings.Contains(s, "Inf")) {
			return &jnode{kind: 's', str: s}
		}
		return &jnode{kind: 'n', num: json.Number(s)}
	case v.BIN != nil:
		return &jnode{kind: 'x', raw: v.BIN}
	}
	s, _ := valueText(v)
	return &jnode{kind: 's', str: s}
}

func substituteText(s string, sub func(string) (*CommandParameterValue, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${aws:iot:commandexecution::")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		s = s[i:]
		var name string
		switch {
		case strings.HasPrefix(s, commandTimeoutPlaceholder):
			s = s[len(commandTimeoutPlaceholder):]
		case strings.HasPrefix(s, commandParameterPlaceholder):
			rest := s[len(commandParameterPlaceholder):]
			j := strings.IndexByte(rest, '}')
			if j < 0 {
				b.WriteString(s)
				return b.String(), nil
			}
			name, s = rest[:j], rest[j+1:]
		default:
			b.WriteString(s[:2])
			s = s[2:]
			continue
		}
		v, ok := sub(name)
		if !ok {
			return "", fmt.Errorf("parameter %s has no value", name)
		}
		t, _ := valueText(v)
		b.WriteString(t)
	}
}

// substitute returns the tree with its placeholders replaced: a string
// that is exactly one placeholder becomes the typed value, placeholders
// inside longer strings (and object keys) become text.
func (n *jnode) substitute(sub func(string) (*CommandParameterValue, bool)) (*jnode, error) {
	switch n.kind {
	case 's':
		if names := placeholderNames(n.str); len(names) == 1 {
			whole := commandTimeoutPlaceholder
			if names[0] != "" {
				whole = commandParameterPlaceholder + names[0] + "}"
			}
			if n.str == whole {
				v, ok := sub(names[0])
				if !ok {
					return nil, fmt.Errorf("parameter %s has no value", names[0])
				}
				return typedNode(v), nil
			}
		}
		s, err := substituteText(n.str, sub)
		return &jnode{kind: 's', str: s}, err
	case 'o':
		out := &jnode{kind: 'o'}
		for i, k := range n.keys {
			kk, err := substituteText(k, sub)
			if err != nil {
				return nil, err
			}
			c, err := n.vals[i].substitute(sub)
			if err != nil {
				return nil, err
			}
			out.keys, out.vals = append(out.keys, kk), append(out.vals, c)
		}
		return out, nil
	case 'a':
		out := &jnode{kind: 'a'}
		for _, c := range n.vals {
			cc, err := c.substitute(sub)
			if err != nil {
				return nil, err
			}
			out.vals = append(out.vals, cc)
		}
		return out, nil
	}
	return n, nil
}

func (n *jnode) appendJSON(b []byte) []byte {
	switch n.kind {
	case 'o':
		b = append(b, '{')
		for i, k := range n.keys {
			if i > 0 {
				b = append(b, ',')
			}
			kb, _ := json.Marshal(k)
			b = append(append(b, kb...), ':')
			b = n.vals[i].appendJSON(b)
		}
		return append(b, '}')
	case 'a':
		b = append(b, '[')
		for i, c := range n.vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = c.appendJSON(b)
		}
		return append(b, ']')
	case 's':
		sb, _ := json.Marshal(n.str)
		return append(b, sb...)
	case 'x':
		sb, _ := json.Marshal(base64.StdEncoding.EncodeToString(n.raw))
		return append(b, sb...)
	case 'n':
		return append(b, n.num...)
	case 'b':
		return strconv.AppendBool(b, n.b)
	}
	return append(b, "null"...)
}

// appendCBOR encodes the tree as CBOR (RFC 8949): definite lengths,
// integers in their shortest form, other numbers as float64.
func (n *jnode) appendCBOR(b []byte) []byte {
	switch n.kind {
	case 'o':
		b = cborHead(b, 5, uint64(len(n.keys)))
		for i, k := range n.keys {
			b = append(cborHead(b, 3, uint64(len(k))), k...)
			b = n.vals[i].appendCBOR(b)
		}
		return b
	case 'a':
		b = cborHead(b, 4, uint64(len(n.vals)))
		for _, c := range n.vals {
			b = c.appendCBOR(b)
		}
		return b
	case 's':
		return append(cborHead(b, 3, uint64(len(n.str))), n.str...)
	case 'x':
		return append(cborHead(b, 2, uint64(len(n.raw))), n.raw...)
	case 'n':
		s := string(n.num)
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return cborHead(b, 0, u)
		}
		if i, err := strconv.ParseInt(s, 10, 64); err == nil && i < 0 {
			return cborHead(b, 1, uint64(-(i + 1)))
		}
		f, _ := strconv.ParseFloat(s, 64)
		return binary.BigEndian.AppendUint64(append(b, 0xfb), math.Float64bits(f))
	case 'b':
		if n.b {
			return append(b, 0xf5)
		}
		return append(b, 0xf4)
	}
	return append(b, 0xf6)
}

func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
