// Azure Monitor alerts on the inference worker, one alert per model (the rules split by a Model
// dimension). They are log search alerts over the Log Analytics workspace behind Application
// Insights: the worker's OpenTelemetry ASP.NET Core instrumentation records every HTTP request in
// the AppRequests table (Url, ResultCode, DurationMs), and the model is the {model} segment of the
// Open Inference Protocol routes /v2/models/{model}[/versions/{version}]/infer.
// - error rate: the share of 5xx answers among a model's infer requests over the last 15 minutes
//   (4xx are the caller's fault - bad tensors, auth - and never count against a model);
// - latency: the p95 of DurationMs of a model's infer requests over the last 15 minutes.
// A model with fewer than minimumRequests requests in the window is not judged, so one slow call
// on an idle model does not page anyone. gRPC infer calls are recorded under the gRPC method's
// path, without the model, and so are not covered by these two rules.

@description('Azure region of the rules (that of the workspace).')
param location string

@description('Prefix for the rule names.')
param namePrefix string

@description('Log Analytics workspace that holds the Application Insights tables.')
param workspaceName string

@description('Email address the alerts go to; empty creates the rules without a notification.')
param alertEmail string = ''

@description('Error-rate threshold in percent of a model\'s infer requests.')
@minValue(1)
@maxValue(100)
param errorRatePercent int = 5

@description('p95 latency threshold in milliseconds.')
@minValue(1)
param latencyMs int = 1000

@description('Fewest infer requests for a model in the window before it is judged.')
@minValue(1)
param minimumRequests int = 20

@description('Tags applied to every resource.')
param tags object

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: '${namePrefix}-worker-alerts'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'lepton'
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Infer requests (routed and pinned) with the model they were for.
var inferRequests = [
  'AppRequests'
  '| where Url has "/v2/models/" and Url has "/infer"'
  '| extend Model = extract(@"/v2/models/([^/?]+)", 1, Url)'
  '| where isnotempty(Model)'
]

var errorRateQuery = join(
  concat(inferRequests, [
    '| summarize Requests = count(), ServerErrors = countif(toint(ResultCode) >= 500) by Model'
    '| where Requests >= ${minimumRequests}'
    '| extend ErrorRatePercent = 100.0 * ServerErrors / Requests'
  ]),
  '\n'
)

var latencyQuery = join(
  concat(inferRequests, [
    '| summarize Requests = count(), P95LatencyMs = percentile(DurationMs, 95) by Model'
    '| where Requests >= ${minimumRequests}'
  ]),
  '\n'
)

var rules = [
  {
    name: '${namePrefix}-worker-error-rate'
    displayName: 'Lepton worker: model error rate above ${errorRatePercent}%'
    description: 'Share of 5xx answers among a model\'s infer requests over 15 minutes, per model.'
    severity: 1
    query: errorRateQuery
    measure: 'ErrorRatePercent'
    threshold: errorRatePercent
  }
  {
    name: '${namePrefix}-worker-latency-p95'
    displayName: 'Lepton worker: model p95 latency above ${latencyMs} ms'
    description: 'p95 of a model\'s infer request durations over 15 minutes, per model.'
    severity: 2
    query: latencyQuery
    measure: 'P95LatencyMs'
    threshold: latencyMs
  }
]

resource workerAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: rule.name
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [
        workspace.id
      ]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT15M'
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: 'Maximum'
            metricMeasureColumn: rule.measure
            // One alert per model: a regression in one model names that model.
            dimensions: [
              {
                name: 'Model'
                operator: 'Include'
                values: [
                  '*'
                ]
              }
            ]
            operator: 'GreaterThan'
            threshold: rule.threshold
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      // AppRequests exists only once the first telemetry arrived; the rule must not wait for it.
      skipQueryValidation: true
      autoMitigate: true
      actions: {
        actionGroups: empty(alertEmail) ? [] : [
          actionGroup.id
        ]
      }
    }
  }
]
