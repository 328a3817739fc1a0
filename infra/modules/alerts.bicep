// Azure Monitor log search alerts on the app's Application Insights, one per alertable event the
// app logs (shared/logger.ts: an error trace whose message starts with `lab-reset alert <name>:`;
// host.json keeps traces out of sampling) and one on the app falling silent (no-reconcile), and
// one action group that e-mails the lab admin.
// docs/deploy.md, "Alerts", says what each alert means and what to do.
//
// The rules query with Azure Monitor's own access to the resource they are scoped to: they get no
// identity and no role, and the app's identity gets nothing for them.

param location string
param appInsightsName string
@description('Starts every rule name, e.g. alert-labreset-1a2b3c4d.')
param ruleNamePrefix string
param actionGroupName string
@description('Where the action group sends e-mail; empty: no action group, and the rules fire without notifying anyone (they still show in Azure Monitor → Alerts).')
param alertEmail string
param tags object

// Event rules look every 5 minutes over the last 15, so an event that reached Application
// Insights a few minutes late is still counted.
var alerts = [
  {
    name: 'pair-gave-up'
    severity: 1
    description: 'A pair gave up after maxResetAttempts failed resets in a row: it stays failed, and lab-reset does not reset it again until an admin clears its record.'
    query: 'traces | where message startswith "lab-reset alert pair-gave-up:"'
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
  }
  {
    name: 'reset-failed-twice'
    severity: 2
    description: 'A pair\'s reset failed twice in a row; lab-reset retries it after a backoff.'
    query: 'traces | where message startswith "lab-reset alert reset-failed-twice:"'
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
  }
  {
    // Also a failed invocation of the timer or of the queue-triggered reconcile (an error that
    // escaped the app, e.g. at start-up), so one failure alerts once.
    name: 'reconcile-failed'
    severity: 2
    description: 'A reconcile failed (it is retried with growing delays), or the timers (scheduledReset, redeliverWebhooks) or the queue-triggered reconcile (reconcileLab) failed.'
    query: 'union (traces | where message startswith "lab-reset alert reconcile-failed:"), (requests | where success == false and operation_Name in ("scheduledReset", "reconcileLab", "redeliverWebhooks"))'
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
  }
  {
    name: 'poison-message'
    severity: 1
    description: 'A reconcile message failed on its last dequeue and was moved to the poison queue.'
    query: 'traces | where message startswith "lab-reset alert poison-message:"'
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
  }
  {
    name: 'pair-out-of-routing'
    severity: 2
    description: 'A pair has been out of job routing (its VM runner lacks the routing labels) for longer than routingAlertMinutes while not busy: perf jobs for it queue. Its lastError says why.'
    query: 'traces | where message startswith "lab-reset alert pair-out-of-routing:"'
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
  }
  {
    // Silence rather than an event: every successful reconcile logs `reconcile {..."ok":true...}`
    // (shared/reconcile/reconcile.ts), the timer at least every 6 hours. The query looks back 7
    // hours itself and returns one row only when it found none, so "no rows" (nothing logged at
    // all: the app stopped) cannot be mistaken for "fine". Hourly, over a day's data.
    name: 'no-reconcile'
    severity: 1
    description: 'No reconcile has succeeded for 7 hours: lab-reset is stopped or broken, and VM runners it took out of routing stay out. Run lab-reset routing restore while it is down.'
    query: 'traces | where timestamp > ago(7h) | where message startswith "reconcile {" and message contains \'"ok":true\' | summarize succeeded = count() | where succeeded == 0'
    evaluationFrequency: 'PT1H'
    windowSize: 'P1D'
  }
]

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  // Action groups are global resources.
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'lab-reset'
    enabled: true
    emailReceivers: [
      {
        name: 'lab-admin'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource rules 'Microsoft.Insights/scheduledQueryRules@2026-03-01' = [
  for alert in alerts: {
    name: '${ruleNamePrefix}-${alert.name}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: 'lab-reset ${alert.name}'
      description: alert.description
      severity: alert.severity
      enabled: true
      scopes: [appInsights.id]
      // The rule is stateful (autoMitigate), so an event seen by several evaluations notifies once;
      // the alert resolves by itself once the window holds none.
      evaluationFrequency: alert.evaluationFrequency
      windowSize: alert.windowSize
      autoMitigate: true
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      actions: {
        actionGroups: empty(alertEmail) ? [] : [actionGroup.id]
      }
    }
  }
]
