// The control plane: a Flex Consumption Function App (Python 3.11, Linux) running function_app.py
// from the repository root. Flex takes its runtime and scale settings from functionAppConfig (not
// from FUNCTIONS_WORKER_RUNTIME, which it rejects) and pulls its package from a blob container
// with the managed identity. Every storage connection is identity based: the host's
// AzureWebJobsStorage (Durable task hub, blob trigger with source EventGrid) and Lepton's own code
// read the same AzureWebJobsStorage__* settings (lepton.shared.settings.APP_SETTING_NAMES).

@description('Azure region for the plan and the app.')
param location string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Globally unique name of the Function App (its host name is <name>.azurewebsites.net).')
param name string

@description('Resource ID of the user-assigned managed identity.')
param identityId string

@description('Client ID of the user-assigned managed identity.')
param identityClientId string

@description('Storage account name used by the host and by Lepton.')
param storageAccountName string

@description('Blob service endpoint, e.g. https://<account>.blob.core.windows.net/.')
param blobEndpoint string

@description('Queue service endpoint.')
param queueEndpoint string

@description('Table service endpoint.')
param tableEndpoint string

@description('URL of the blob container holding the deployment package.')
param deploymentContainerUrl string

@description('Application Insights connection string (locates the endpoint; grants nothing alone).')
param appInsightsConnectionString string

@description('Largest model file Lepton accepts, in bytes (LEPTON_MAX_MODEL_BYTES).')
@minValue(1)
param maxModelBytes int

@description('Most instances Flex Consumption may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance; 2048 fits ONNX Runtime validating and evaluating a model.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Spread instances over availability zones (needs a region with zones; off for dev).')
param zoneRedundant bool = true

@description('Tags applied to every resource.')
param tags object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    // Linux: Flex Consumption runs only on Linux.
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Event Grid delivers blob events to the blobs_extension webhook and operators call the HTTP API, so the app needs a public endpoint; every route requires a function key.
  // checkov:skip=CKV_AZURE_17: callers (Event Grid, the lepton CLI) cannot present client certificates; routes use function keys over TLS 1.2.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances itself (numberOfWorkers does not apply); maximumInstanceCount and zone redundancy cover failover.
  // checkov:skip=CKV_AZURE_213: Flex Consumption does not support the App Service health check; the platform replaces unhealthy instances.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      cors: {
        allowedOrigins: []
      }
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: blobEndpoint
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: queueEndpoint
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: tableEndpoint
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsightsConnectionString
        }
        {
          // Read by the Functions host and by the Azure Monitor exporter: ingest with Entra ID.
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        {
          // azure-identity's ManagedIdentityCredential and DefaultAzureCredential read this one.
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'LEPTON_MAX_MODEL_BYTES'
          value: string(maxModelBytes)
        }
        {
          // Flex Consumption instances may write only to /tmp.
          name: 'LEPTON_CACHE_DIR'
          value: '/tmp/lepton-cache'
        }
        {
          // Metric rollups older than this are deleted (DESIGN §8): a week, in hours.
          name: 'LEPTON_METRICS_RETENTION_HOURS'
          value: '168'
        }
        {
          // NCRONTAB (with seconds) of the retention timer function: at minute 0 of every hour.
          name: 'LEPTON_METRICS_RETENTION_SCHEDULE'
          value: '0 0 * * * *'
        }
      ]
    }
  }
}

// No publishing with user names and passwords: deployments authenticate with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
