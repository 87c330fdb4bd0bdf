package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iot"
	iottypes "github.com/aws/aws-sdk-go-v2/service/iot/types"

	"github.com/jobsbroker/jobsbroker/broker/brokertest"
)

// handlerStep is the one step of a managed template's document as the AWS
// IoT Device Client's jobs feature reads it (and as AWS's developer guide
// prints it), with its parameters filled in.
func handlerStep(name, handler, path, user string, args ...string) string {
	input := map[string]any{"handler": handler, "path": path}
	if args != nil {
		input["args"] = args
	}
	b, _ := json.Marshal(map[string]any{"version": "1.0", "steps": []any{map[string]any{"action": map[string]any{
		"name": name, "type": "runHandler", "input": input, "runAsUser": user}}}})
	return string(b)
}

// TestManagedTemplates creates a job from each AWS-managed template with
// its parameters and checks the document a device receives against the
// one the AWS IoT Device Client's handlers expect.
func TestManagedTemplates(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	api := b.IoT()
	cases := []struct {
		name   string
		params map[string]string
		want   string
	}{
		{"AWS-Download-File", map[string]string{"downloadUrl": "https://example.com/fw.bin", "filePath": "/tmp/fw.bin"},
			handlerStep("Download-File", "download-file.sh", "", "", "https://example.com/fw.bin", "/tmp/fw.bin")},
		{"AWS-Install-Application", map[string]string{"packages": "nano vim", "runAsUser": "root"},
			handlerStep("Install-Application", "install-packages.sh", "", "root", "nano vim")},
		{"AWS-Reboot", nil, handlerStep("Reboot", "reboot.sh", "", "")},
		{"AWS-Remove-Application", map[string]string{"packages": "nano", "pathToHandler": "/opt/handlers"},
			handlerStep("Remove-Application", "remove-packages.sh", "/opt/handlers", "", "nano")},
		{"AWS-Restart-Application", map[string]string{"services": "ssh"}, handlerStep("Restart-Application", "restart-services.sh", "", "", "ssh")},
		{"AWS-Run-Command", map[string]string{"command": `echo,"quoted"\,text`},
			`{"version":"1.0","steps":[{"action":{"name":"Run-Command","type":"runCommand","input":{"command":"echo,\"quoted\"\\,text"},"runAsUser":""}}]}`},
		{"AWS-Start-Application", map[string]string{"services": "ssh nginx"}, handlerStep("Start-Application", "start-services.sh", "", "", "ssh nginx")},
		{"AWS-Stop-Application", map[string]string{"services": "nginx"}, handlerStep("Stop-Application", "stop-services.sh", "", "", "nginx")},
	}
	list, err := api.ListManagedJobTemplates(ctx, &iot.ListManagedJobTemplatesInput{})
	if err != nil || len(list.ManagedJobTemplates) != len(cases) {
		t.Fatalf("ListManagedJobTemplates = %+v, %v; want %d templates", list, err, len(cases))
	}
	dev := brokertest.Connect5(t, b.MQTTAddr(), "pump-1")
	for i, c := range cases {
		s := list.ManagedJobTemplates[i]
		arn := "arn:aws:iot:us-east-1::jobtemplate/" + c.name + ":1.0"
		if aws.ToString(s.TemplateName) != c.name || aws.ToString(s.TemplateArn) != arn || aws.ToString(s.TemplateVersion) != "1.0" ||
			!reflect.DeepEqual(s.Environments, []string{"LINUX"}) || !strings.HasPrefix(aws.ToString(s.Description), "A managed job template for ") {
			t.Errorf("summary %d = %+v", i, s)
		}
		d, err := api.DescribeManagedJobTemplate(ctx, &iot.DescribeManagedJobTemplateInput{TemplateName: aws.String(c.name)})
		if err != nil || aws.ToString(d.TemplateArn) != arn || !strings.Contains(aws.ToString(d.Document), "${aws:iot:parameter:runAsUser}") {
			t.Fatalf("DescribeManagedJobTemplate(%s) = %+v, %v", c.name, d, err)
		}
		for _, p := range d.DocumentParameters {
			if _, given := c.params[aws.ToString(p.Key)]; !given && !p.Optional && c.name != "AWS-Reboot" {
				t.Errorf("%s: the test leaves out required parameter %s", c.name, aws.ToString(p.Key))
			}
		}

		job := strings.ToLower(strings.TrimPrefix(c.name, "AWS-"))
		out, err := api.CreateJob(ctx, &iot.CreateJobInput{JobId: aws.String(job), Targets: []string{brokertest.ThingARN("pump-1")},
			JobTemplateArn: aws.String(arn), DocumentParameters: c.params})
		if err != nil {
			t.Fatalf("CreateJob from %s: %v", c.name, err)
		}
		if aws.ToString(out.Description) != aws.ToString(d.Description) {
			t.Errorf("CreateJob from %s: description %q, want the template's", c.name, aws.ToString(out.Description))
		}
		reply := dev.MustAccept("$aws/things/pump-1/jobs/"+job+"/get", map[string]any{})
		got, _ := json.Marshal(reply["execution"].(map[string]any)["jobDocument"])
		var gotDoc, wantDoc any
		json.Unmarshal(got, &gotDoc)
		json.Unmarshal([]byte(c.want), &wantDoc)
		if !reflect.DeepEqual(gotDoc, wantDoc) {
			t.Errorf("%s: the device receives\n%s\nwant\n%s", c.name, got, c.want)
		}
		desc, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String(job)})
		if err != nil || aws.ToString(desc.Job.JobTemplateArn) != arn || !reflect.DeepEqual(desc.Job.DocumentParameters, c.params) && len(c.params) > 0 {
			t.Errorf("DescribeJob %s = %+v, %v", job, desc.Job, err)
		}
		before, err := api.GetJobDocument(ctx, &iot.GetJobDocumentInput{JobId: aws.String(job), BeforeSubstitution: true})
		if err != nil || aws.ToString(before.Document) != aws.ToString(d.Document) {
			t.Errorf("GetJobDocument %s beforeSubstitution = %v, %v; want the template's document", job, before, err)
		}
		dev.MustAccept("$aws/things/pump-1/jobs/"+job+"/update", map[string]any{"status": "SUCCEEDED"})
	}
}

// TestManagedTemplateErrors checks the refusals of the managed-template
// operations and of CreateJob from a managed template.
func TestManagedTemplateErrors(t *testing.T) {
	b := brokertest.Start(t)
	ctx := context.Background()
	api := b.IoT()
	var nf *iottypes.ResourceNotFoundException
	var ire *iottypes.InvalidRequestException

	if _, err := api.DescribeManagedJobTemplate(ctx, &iot.DescribeManagedJobTemplateInput{TemplateName: aws.String("AWS-Format-Disk")}); !errors.As(err, &nf) {
		t.Errorf("DescribeManagedJobTemplate of an unknown template = %v, want ResourceNotFoundException", err)
	}
	if _, err := api.DescribeManagedJobTemplate(ctx, &iot.DescribeManagedJobTemplateInput{TemplateName: aws.String("AWS-Reboot"), TemplateVersion: aws.String("2.0")}); !errors.As(err, &nf) {
		t.Errorf("DescribeManagedJobTemplate of an unknown version = %v, want ResourceNotFoundException", err)
	}
	if _, err := api.DescribeManagedJobTemplate(ctx, &iot.DescribeManagedJobTemplateInput{TemplateName: aws.String("AWS-Reboot"), TemplateVersion: aws.String("latest")}); !errors.As(err, &ire) {
		t.Errorf("DescribeManagedJobTemplate with a malformed version = %v, want InvalidRequestException", err)
	}
	if _, err := api.ListManagedJobTemplates(ctx, &iot.ListManagedJobTemplatesInput{TemplateName: aws.String("AWS-Format-Disk")}); !errors.As(err, &nf) {
		t.Errorf("ListManagedJobTemplates of an unknown name = %v, want ResourceNotFoundException", err)
	}
	one, err := api.ListManagedJobTemplates(ctx, &iot.ListManagedJobTemplatesInput{TemplateName: aws.String("AWS-Reboot")})
	if err != nil || len(one.ManagedJobTemplates) != 1 || one.NextToken != nil {
		t.Errorf("ListManagedJobTemplates(AWS-Reboot) = %+v, %v", one, err)
	}
	var names []string
	p := iot.NewListManagedJobTemplatesPaginator(api, &iot.ListManagedJobTemplatesInput{MaxResults: aws.Int32(3)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.ManagedJobTemplates) > 3 {
			t.Fatalf("a page of %d templates with maxResults 3", len(page.ManagedJobTemplates))
		}
		for _, s := range page.ManagedJobTemplates {
			names = append(names, aws.ToString(s.TemplateName))
		}
	}
	if len(names) != 8 || names[0] != "AWS-Download-File" || names[7] != "AWS-Stop-Application" {
		t.Errorf("paged through %v", names)
	}

	target := []string{brokertest.ThingARN("pump-1")}
	for _, c := range []struct {
		arn    string
		params map[string]string
		doc    string
		want   any
		msg    string
	}{
		{"arn:aws:iot:us-east-1::jobtemplate/AWS-Download-File:1.0", map[string]string{"downloadUrl": "https://example.com/a"}, "", &ire, "filePath"},
		{"arn:aws:iot:us-east-1::jobtemplate/AWS-Reboot:1.0", map[string]string{"delay": "5"}, "", &ire, "delay"},
		{"arn:aws:iot:us-east-1::jobtemplate/AWS-Reboot:1.0", map[string]string{"runAsUser": strings.Repeat("u", 257)}, "", &ire, "runAsUser"},
		{"arn:aws:iot:us-east-1::jobtemplate/AWS-Reboot:1.0", nil, `{"operation":"reboot"}`, &ire, "template's document"},
		{"arn:aws:iot:us-east-1::jobtemplate/AWS-Run-Command:1.0", map[string]string{"command": "ls,-l", "pathToHandler": "/x"}, "", &ire, "pathToHandler"},
		{"arn:aws:iot:us-east-1::jobtemplate/AWS-Reboot:9.0", nil, "", &nf, "9.0"},
		{"arn:aws:iot:us-east-1::jobtemplate/AWS-Format-Disk:1.0", nil, "", &nf, "AWS-Format-Disk"},
	} {
		in := &iot.CreateJobInput{JobId: aws.String("m"), Targets: target, JobTemplateArn: aws.String(c.arn), DocumentParameters: c.params}
		if c.doc != "" {
			in.Document = aws.String(c.doc)
		}
		_, err := api.CreateJob(ctx, in)
		if !errors.As(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("CreateJob from %s with %v = %v; want %T naming %s", c.arn, c.params, err, c.want, c.msg)
		}
	}
	if _, err := api.DescribeJob(ctx, &iot.DescribeJobInput{JobId: aws.String("m")}); !errors.As(err, &nf) {
		t.Errorf("a refused CreateJob left a job: %v", err)
	}
}

// TestManagedTemplateDocumentText checks the document text
// DescribeManagedJobTemplate returns for AWS-Download-File against the one
// AWS's developer guide prints, byte for byte.
func TestManagedTemplateDocumentText(t *testing.T) {
	api := brokertest.Start(t).IoT()
	d, err := api.DescribeManagedJobTemplate(context.Background(), &iot.DescribeManagedJobTemplateInput{TemplateName: aws.String("AWS-Download-File")})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"version":"1.0","steps":[{"action":{"name":"Download-File","type":"runHandler","input":{"handler":"download-file.sh","args":["${aws:iot:parameter:downloadUrl}","${aws:iot:parameter:filePath}"],"path":"${aws:iot:parameter:pathToHandler}"},"runAsUser":"${aws:iot:parameter:runAsUser}"}}]}`
	if got := aws.ToString(d.Document); got != want {
		t.Errorf("document =\n%s\nwant\n%s", got, want)
	}
	var keys []string
	for _, p := range d.DocumentParameters {
		keys = append(keys, aws.ToString(p.Key)+"/"+aws.ToString(p.Regex))
	}
	if want := []string{"downloadUrl/(.*?)", "filePath/(.*?)", "runAsUser/(.){0,256}", "pathToHandler/(.){0,4096}"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("documentParameters = %v, want %v", keys, want)
	}
}
