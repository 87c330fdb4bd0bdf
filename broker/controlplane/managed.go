package controlplane

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jobsbroker/jobsbroker/broker/awsapi"
	"github.com/jobsbroker/jobsbroker/store"
)

// AWS-managed job templates: DescribeManagedJobTemplate,
// ListManagedJobTemplates, and CreateJob from a managed template's ARN,
// arn:aws:iot:{region}::jobtemplate/{name}:{version} (no account).
//
// The catalogue is AWS's as its developer guide lists it ("Managed
// template remote actions and job documents"): eight templates, version
// 1.0, each a one-step document for the AWS IoT Device Client's jobs
// feature, whose handler scripts (reboot.sh, download-file.sh,
// install-packages.sh, remove-packages.sh, start-services.sh,
// stop-services.sh, restart-services.sh; Run-Command uses the client's
// built-in runCommand) carry the same names. The parameters of
// AWS-Download-File are as DescribeManagedJobTemplate returns them in the
// guide; the others follow the same shape.

// managedErrors are the exceptions both managed-template operations
// declare.
var managedErrors = declares("InternalServerException", exInvalid, exNotFound, exThrottling)

// docParam is one documentParameters entry of a managed template.
type docParam struct {
	Key         string `json:"key"`
	Description string `json:"description"`
	Regex       string `json:"regex"`
	Example     string `json:"example"`
	Optional    bool   `json:"optional"`

	match func(string) bool
}

// boundedAny matches the regex (.){0,N}, whose bound Go's regexp caps at
// 1000.
var boundedAny = regexp.MustCompile(`^\(\.\)\{0,([0-9]+)\}$`)

// matcher returns a test of a whole value against regex, as AWS applies
// a parameter's regex.
func matcher(regex string) func(string) bool {
	if m := boundedAny.FindStringSubmatch(regex); m != nil {
		n, _ := strconv.Atoi(m[1])
		return func(v string) bool { return !strings.Contains(v, "\n") && utf8.RuneCountInString(v) <= n }
	}
	re := regexp.MustCompile(`^(?:` + regex + `)$`)
	return re.MatchString
}

// managedTemplate is one AWS-managed job template version.
type managedTemplate struct {
	name, version, description string
	params                     []docParam
	document                   string
}

// The parameters every managed template shares.
var (
	runAsUser = docParam{Key: "runAsUser", Optional: true, Regex: "(.){0,256}", Example: "user1",
		Description: "Execute handler as another user. If not specified, then handler is executed as the same user as device client."}
	pathToHandler = docParam{Key: "pathToHandler", Optional: true, Regex: "(.){0,4096}", Example: "/path/to/handler/script",
		Description: "Path to handler on the device. If not specified, then device client will use the current working directory."}
)

// handlerDocument is the job document of a template that runs a Device
// Client handler script with args, in AWS's key order:
// {"version":"1.0","steps":[{"action":{"name","type","input","runAsUser"}}]}.
func handlerDocument(action, handler string, args ...string) string {
	input := `{"handler":` + quote(handler)
	if len(args) > 0 {
		input += `,"args":[`
		for i, a := range args {
			if i > 0 {
				input += ","
			}
			input += quote(a)
		}
		input += "]"
	}
	input += `,"path":"${aws:iot:parameter:pathToHandler}"}`
	return stepDocument(action, "runHandler", input)
}

func stepDocument(action, kind, input string) string {
	return `{"version":"1.0","steps":[{"action":{"name":` + quote(action) + `,"type":` + quote(kind) +
		`,"input":` + input + `,"runAsUser":"${aws:iot:parameter:runAsUser}"}}]}`
}

func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func param(key, description, example string) docParam {
	return docParam{Key: key, Description: description, Regex: "(.*?)", Example: example}
}

func listTemplate(name, description, action, handler, key, paramDescription, example string) managedTemplate {
	return managedTemplate{name: name, version: "1.0", description: description,
		params:   []docParam{param(key, paramDescription, example), runAsUser, pathToHandler},
		document: handlerDocument(action, handler, "${aws:iot:parameter:"+key+"}")}
}

// managedTemplates is the catalogue, in name order.
var managedTemplates = func() []*managedTemplate {
	ts := []managedTemplate{
		{name: "AWS-Download-File", version: "1.0", description: "A managed job template for downloading a file.",
			params: []docParam{
				param("downloadUrl", "URL of file to download.", "http://www.example.com/index.html"),
				param("filePath", "Path on the device where downloaded file is written.", "/path/to/file"),
				runAsUser, pathToHandler,
			},
			document: handlerDocument("Download-File", "download-file.sh", "${aws:iot:parameter:downloadUrl}", "${aws:iot:parameter:filePath}")},
		listTemplate("AWS-Install-Application", "A managed job template for installing one or more applications.",
			"Install-Application", "install-packages.sh", "packages", "Space separated list of applications to install.", "nano vim"),
		{name: "AWS-Reboot", version: "1.0", description: "A managed job template for rebooting the device.",
			params: []docParam{runAsUser, pathToHandler}, document: handlerDocument("Reboot", "reboot.sh")},
		listTemplate("AWS-Remove-Application", "A managed job template for uninstalling one or more applications.",
			"Remove-Application", "remove-packages.sh", "packages", "Space separated list of applications to uninstall.", "nano vim"),
		listTemplate("AWS-Restart-Application", "A managed job template for restarting one or more system services.",
			"Restart-Application", "restart-services.sh", "services", "Space separated list of services to restart.", "ssh nginx"),
		{name: "AWS-Run-Command", version: "1.0", description: "A managed job template for running a shell command.",
			params: []docParam{
				param("command", "Comma separated command and arguments to run; escape a comma inside them with a backslash.", "ls,-l,/tmp"),
				runAsUser,
			},
			document: stepDocument("Run-Command", "runCommand", `{"command":"${aws:iot:parameter:command}"}`)},
		listTemplate("AWS-Start-Application", "A managed job template for starting one or more system services.",
			"Start-Application", "start-services.sh", "services", "Space separated list of services to start.", "ssh nginx"),
		listTemplate("AWS-Stop-Application", "A managed job template for stopping one or more system services.",
			"Stop-Application", "stop-services.sh", "services", "Space separated list of services to stop.", "ssh nginx"),
	}
	out := make([]*managedTemplate, len(ts))
	for i := range ts {
		t := &ts[i]
		for j := range t.params {
			t.params[j].match = matcher(t.params[j].Regex)
		}
		out[i] = t
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name+":"+out[i].version < out[j].name+":"+out[j].version })
	return out
}()

// managedVersion is the pattern of templateVersion in the model.
var managedVersion = regexp.MustCompile(`^[1-9]+.[0-9]+$`)

// findManaged returns the managed template name at version ("": the
// latest).
func findManaged(name, version string) *managedTemplate {
	var found *managedTemplate
	for _, t := range managedTemplates {
		if t.name == name && (version == "" || t.version == version) {
			found = t // the catalogue is in version order
		}
	}
	return found
}

func (a *API) managedTemplateArn(t *managedTemplate) string {
	return "arn:aws:iot:" + a.opts.Region + "::jobtemplate/" + t.name + ":" + t.version
}

type wireManagedSummary struct {
	TemplateArn     string   `json:"templateArn"`
	TemplateName    string   `json:"templateName"`
	Description     string   `json:"description"`
	Environments    []string `json:"environments"`
	TemplateVersion string   `json:"templateVersion"`
}

func (a *API) managedSummary(t *managedTemplate) wireManagedSummary {
	return wireManagedSummary{TemplateArn: a.managedTemplateArn(t), TemplateName: t.name, Description: t.description,
		Environments: []string{"LINUX"}, TemplateVersion: t.version}
}

func (a *API) describeManagedJobTemplate(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, managedErrors)
	name, version := r.PathValue("templateName"), r.URL.Query().Get("templateVersion")
	if len(name) > 64 {
		return invalid("templateName must have 1-64 characters")
	}
	if version != "" && !managedVersion.MatchString(version) {
		return invalid("templateVersion " + strconv.Quote(version) + " must be a version such as 1.0")
	}
	t := findManaged(name, version)
	if t == nil {
		return notFound("managed job template " + describeVersion(name, version) + " does not exist")
	}
	s := a.managedSummary(t)
	awsapi.WriteJSON(w, http.StatusOK, struct {
		TemplateName       string     `json:"templateName"`
		TemplateArn        string     `json:"templateArn"`
		Description        string     `json:"description"`
		TemplateVersion    string     `json:"templateVersion"`
		Environments       []string   `json:"environments"`
		DocumentParameters []docParam `json:"documentParameters"`
		Document           string     `json:"document"`
	}{s.TemplateName, s.TemplateArn, s.Description, s.TemplateVersion, s.Environments, t.params, t.document})
	return nil
}

func describeVersion(name, version string) string {
	if version == "" {
		return name
	}
	return name + " version " + version
}

func notFound(msg string) error { return awsapi.Errorf(http.StatusNotFound, exNotFound, msg) }

func (a *API) listManagedJobTemplates(ctx context.Context, w http.ResponseWriter, r *http.Request) (err error) {
	defer restrict(&err, managedErrors)
	q := r.URL.Query()
	name := q.Get("templateName")
	limit, err := maxResults(r)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = store.DefaultMaxResults
	}
	after := ""
	if tok := q.Get("nextToken"); tok != "" {
		pos, err := store.DecodeListToken(tok)
		if err != nil {
			return err
		}
		after = string(pos)
	}
	out := struct {
		Templates []wireManagedSummary `json:"managedJobTemplates"`
		NextToken string               `json:"nextToken,omitempty"`
	}{Templates: []wireManagedSummary{}}
	matched := false
	for _, t := range managedTemplates {
		if name != "" && t.name != name {
			continue
		}
		matched = true
		if key := t.name + ":" + t.version; key > after {
			if len(out.Templates) == limit {
				last := out.Templates[limit-1]
				out.NextToken = store.EncodeListToken([]byte(last.TemplateName + ":" + last.TemplateVersion))
				break
			}
			out.Templates = append(out.Templates, a.managedSummary(t))
		}
	}
	if name != "" && !matched {
		return notFound("managed job template " + name + " does not exist")
	}
	awsapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

// parseManagedARN splits a managed template ARN,
// arn:{partition}:iot:{region}::jobtemplate/{name}:{version}; ok is false
// for any other ARN (a custom template's has an account).
func parseManagedARN(arn string) (name, version string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iot" || parts[4] != "" {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(parts[5], "jobtemplate/")
	if !ok {
		return "", "", false
	}
	name, version, _ = strings.Cut(rest, ":")
	return name, version, true
}

// managedJob fills a CreateJob request that names a managed template: it
// checks documentParameters against the template (every required
// parameter given, no unknown one, each value matching its regex) and
// substitutes them, an optional parameter left out becoming "".
func managedJob(in *store.CreateJobInput) error {
	name, version, ok := parseManagedARN(in.Job.JobTemplateArn)
	if !ok {
		return nil
	}
	if in.Document != "" || in.Job.DocumentSource != "" {
		return invalid("a job created from a jobTemplateArn takes the template's document; do not pass one")
	}
	t := findManaged(name, version)
	if t == nil {
		return notFound("managed job template " + describeVersion(name, version) + " does not exist")
	}
	values := map[string]string{}
	known := map[string]bool{}
	for _, p := range t.params {
		known[p.Key] = true
		v, given := in.Job.DocumentParameters[p.Key]
		switch {
		case !given && !p.Optional:
			return invalid("documentParameters lacks " + p.Key + ", which managed template " + t.name + " requires")
		case given && !p.match(v):
			return invalid("documentParameters value of " + p.Key + " does not match the template's pattern " + p.Regex)
		}
		values[p.Key] = v
	}
	for k := range in.Job.DocumentParameters {
		if !known[k] {
			return invalid("documentParameters names " + strconv.Quote(k) + ", which managed template " + t.name + " does not take")
		}
	}
	doc, err := store.SubstituteParameters(t.document, values)
	if err != nil {
		return err
	}
	in.Document = doc
	in.Template = &store.JobTemplate{JobTemplateID: t.name + ":" + t.version, Description: t.description, Document: t.document}
	return nil
}
