// The control plane: a Flex Consumption Function App (Linux) running the .NET isolated worker
// published from src/Functions. Flex takes the worker runtime and its version from
// functionAppConfig.runtime (dotnet-isolated, the app's .NET version): it rejects
// FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION and the content-share settings as app
// settings. It pulls its deployment package from a blob container with the managed identity. Every
// storage connection is identity based: the host's AzureWebJobsStorage (Durable task hub, blob
// trigger with Source = EventGrid, timer locks, keys) and Lepton's own code read the same
// AzureWebJobsStorage__* settings (Lepton.Shared.Configuration.AppSettingNames).

@description('Azure region for the plan and the app.')
param location string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Globally unique name of the Function App (its host name is <name>.azurewebsites.net).')
param name string

@description('Name of the user-assigned managed identity the host and the code run as.')
param identityName string

@description('Storage account used by the host and by Lepton.')
param storageAccountName string

@description('Blob container in that account holding the deployment package.')
param deploymentContainerName string

@description('Application Insights component that receives the telemetry.')
param appInsightsName string

@description('.NET version the isolated worker targets (net10.0 -> 10.0).')
@allowed([
  '8.0'
  '9.0'
  '10.0'
])
param dotnetVersion string

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

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: identityName
}

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var endpoints = storage.properties.primaryEndpoints

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
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

resource site 'Microsoft.Web/sites@2025-03-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Event Grid delivers blob events to the blobs_extension webhook and operators call the HTTP
    // API, so the app has a public endpoint; every route needs a function key (or the system key).
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${endpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // What FUNCTIONS_WORKER_RUNTIME=dotnet-isolated and the .NET version say on other plans.
      runtime: {
        name: 'dotnet-isolated'
        version: dotnetVersion
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
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identity.properties.clientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: endpoints.blob
        }
        {
          // The Durable task hub's control and work-item queues.
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: endpoints.queue
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: endpoints.table
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          // The Functions host ingests its own telemetry with Entra ID (local auth is off).
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        {
          // Azure.Identity's DefaultAzureCredential (e.g. for the Azure Monitor exporter) picks
          // the user-assigned identity by this; the app has no system-assigned one.
          name: 'AZURE_CLIENT_ID'
          value: identity.properties.clientId
        }
        {
          name: 'LEPTON_MAX_MODEL_BYTES'
          value: string(maxModelBytes)
        }
        {
          // The app's own folder is read-only on Flex Consumption; /tmp is the writable place.
          name: 'LEPTON_CACHE_DIR'
          value: '/tmp/lepton-cache'
        }
        {
          // Metric rollups older than this are deleted (DESIGN section 8): a week, in hours.
          name: 'LEPTON_METRICS_RETENTION_HOURS'
          value: '168'
        }
        {
          // The retention timer's schedule (NCRONTAB with seconds): minute 0 of every hour. A
          // trigger that names it as %LEPTON_METRICS_RETENTION_SCHEDULE% fails to index without it.
          name: 'LEPTON_METRICS_RETENTION_SCHEDULE'
          value: '0 0 * * * *'
        }
      ]
    }
  }
}

// No publishing with user names and passwords: deployments authenticate with Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output defaultHostName string = site.properties.defaultHostName
