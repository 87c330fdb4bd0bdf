// Package schedule owns the time rules of AWS IoT Jobs scheduling
// (CreateJob's schedulingConfig, PROTOCOL.md §11.2 and §13):
//
//   - the startTime/endTime format ("YYYY-MM-DDTHH:MM", UTC): ParseTime and
//     FormatTime;
//   - AWS cron expressions, the six-field EventBridge syntax that maintenance
//     windows use: ParseCron and Cron.Next;
//   - recurring maintenance windows (a cron start plus a duration): whether a
//     job is inside one at a given time, and the next openings that
//     DescribeJob reports as scheduledJobRollouts: ParseWindow, Open and
//     NextStarts;
//   - the creation-time checks AWS applies to a schedulingConfig: Validate.
//
// Everything here is a pure function of its arguments (the current time is
// always passed in), works in UTC at minute resolution, and depends on the
// standard library only, so the store package and every backend can share it.
package schedule
