// Log Analytics workspace and a workspace-based Application Insights component. Local (key-based)
// ingestion is off: the Functions host (APPLICATIONINSIGHTS_AUTHENTICATION_STRING) and the
// OpenTelemetry Azure Monitor exporters authenticate as the managed identity, which roles.bicep
// makes Monitoring Metrics Publisher on the component. Application Insights writes its tables
// (AppRequests, AppMetrics, ...) into the workspace, where alerts.bicep queries them.

@description('Azure region for the monitoring resources.')
param location string

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Days Log Analytics keeps data; 30 is the retention included in ingestion.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Tags applied to every resource.')
param tags object

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // Queries authenticate with Entra ID and RBAC on the resource, never a workspace key.
      disableLocalAuth: true
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    // Telemetry is accepted only with an Entra ID token (Monitoring Metrics Publisher).
    DisableLocalAuth: true
  }
}

output workspaceId string = workspace.id
output appInsightsId string = appInsights.id
