// The Container Apps environment the inference workers run in: a Consumption profile for anything
// small and a serverless GPU workload profile (T4 or A100, billed per second, able to scale to zero)
// for the workers. Logs go to Azure Monitor through a diagnostic setting, so no Log Analytics
// shared key ever appears in the template. A GPU profile can only be added when the environment is
// created: changing gpuProfileType means a new environment.

@description('Azure region; serverless GPUs exist only in some regions (see README.md).')
param location string

@description('Name of the Container Apps environment.')
param name string

@description('Name of the GPU workload profile inside the environment.')
param gpuProfileName string = 'gpu'

@description('Serverless GPU type: NC8as-T4 (16 GiB T4) or NC24-A100 (80 GiB A100).')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Log Analytics workspace that receives the console and system logs.')
param workspaceName string

@description('Tags applied to every resource.')
param tags object

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      // Diagnostic settings below, authenticated by the platform: no workspace key needed.
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
      {
        name: gpuProfileName
        workloadProfileType: gpuProfileType
      }
    ]
  }
}

resource environmentDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: environment
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

output gpuProfileName string = gpuProfileName
