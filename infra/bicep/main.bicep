// Lepton on Azure, one resource group: storage (models, datasets, reports, the registry tables, the
// Event Grid system topic), a Flex Consumption Function App running the .NET isolated control plane
// (src/Functions), a Container Apps environment with a serverless GPU profile running the inference
// worker image (docker/worker.gpu.Dockerfile), a container registry, a Key Vault for the worker's
// API keys, Log Analytics + Application Insights with alert rules on the worker, and one
// user-assigned managed identity that every part authenticates as (no keys or SAS anywhere).
// README.md beside this file has the deployment steps, including the post-deploy Event Grid
// subscription that needs the deployed function's blobs_extension key.
//
// Names are computed here, once, and passed to the modules: modules look resources up by name
// (`existing`), so every resource identifier is known before the deployment starts (what-if can
// predict it) and the ordering is the explicit dependsOn below.

targetScope = 'resourceGroup'

metadata description = 'Lepton: Functions control plane, GPU inference workers, storage, telemetry and alerts'

@description('Azure region. Pick one with Flex Consumption and Container Apps serverless GPUs (see README.md).')
param location string = resourceGroup().location

@description('Short lowercase prefix for resource names (letters and digits).')
@minLength(2)
@maxLength(8)
param namePrefix string = 'lepton'

@description('Environment name used in resource names, e.g. dev, test, prod.')
@minLength(2)
@maxLength(8)
param environmentName string

@description('Storage redundancy; Standard_GZRS survives a zone and a region outage.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_GZRS'

@description('Zone-redundant Function App plan and registry (needs a region with availability zones).')
param zoneRedundant bool = true

@description('Key Vault purge protection: a deleted vault and its keys stay recoverable for 90 days. Irreversible once on; off only for throwaway environments.')
param keyVaultPurgeProtection bool = true

@description('Largest model file accepted and loaded, in bytes (LEPTON_MAX_MODEL_BYTES).')
@minValue(1)
param maxModelBytes int = 536870912

@description('Most instances the Function App may scale out to.')
@minValue(40)
@maxValue(1000)
param functionMaximumInstanceCount int = 100

@description('Memory per Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param functionInstanceMemoryMB int = 2048

@description('Serverless GPU type for the workers.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Worker image (<registry>.azurecr.io/lepton-worker:<tag>); empty skips the worker until the image is pushed.')
param workerImage string = ''

@description('Fewest worker replicas; at least 1 keeps a warm worker for canaries.')
@minValue(0)
@maxValue(300)
param workerMinReplicas int = 1

@description('Most worker replicas.')
@minValue(1)
@maxValue(300)
param workerMaxReplicas int = 4

@description('CIDR ranges allowed to call the worker from outside the environment; empty keeps ingress internal.')
param workerAllowedIpRanges string[] = []

@description('How callers authenticate to the worker (LEPTON_WORKER_AUTH): key = API keys from the Key Vault secret worker-api-keys, entra = Entra ID tokens for workerEntraAudience, none = open (never in production).')
@allowed([
  'key'
  'entra'
  'none'
])
param workerAuth string = 'key'

@description('With workerAuth=entra: the audience (application ID URI or client ID) tokens must be issued for.')
param workerEntraAudience string = ''

@description('With workerAuth=entra: the tenant whose tokens the worker accepts.')
param workerEntraTenantId string = tenant().tenantId

@description('Extra worker environment variables.')
param workerExtraEnv environmentVariable[] = []

@description('Email address alerts are sent to; empty creates the alert rules without a notification.')
param alertEmail string = ''

@description('Alert when a model\'s share of 5xx inference answers over 15 minutes exceeds this percentage.')
@minValue(1)
@maxValue(100)
param workerErrorRateAlertPercent int = 5

@description('Alert when a model\'s p95 inference latency over 15 minutes exceeds this many milliseconds.')
@minValue(1)
param workerLatencyAlertMs int = 1000

@description('Fewest inference requests for a model in the window before either alert judges it.')
@minValue(1)
param alertMinimumRequests int = 20

@description('Tags applied to every resource.')
param tags resourceTags = {}

@description('A container environment variable with a plain value.')
type environmentVariable = {
  name: string
  value: string
}

@description('Resource tags: names to string values.')
type resourceTags = {
  *: string
}

var suffix = uniqueString(resourceGroup().id, namePrefix, environmentName)
// Container Apps names must be lowercase.
var baseName = toLower('${namePrefix}-${environmentName}')
var compactPrefix = toLower(namePrefix)
var allTags = union(tags, {
  application: 'lepton'
  environment: environmentName
})
var names = {
  identity: '${baseName}-id'
  workspace: '${baseName}-logs'
  appInsights: '${baseName}-appi'
  storage: take('st${compactPrefix}${suffix}', 24)
  registry: take('cr${compactPrefix}${suffix}', 50)
  keyVault: take('kv${compactPrefix}${suffix}', 24)
  plan: '${baseName}-plan'
  // Short enough for every Functions naming limit, unique enough for a global host name.
  functionApp: '${baseName}-func-${take(suffix, 6)}'
  deploymentContainer: 'app-package-${take(suffix, 8)}'
  containerEnvironment: '${baseName}-cae'
  worker: '${baseName}-worker'
}
// The Functions app targets net10.0 (Directory.Build.props); Flex Consumption takes the .NET
// version from functionAppConfig.runtime, not from FUNCTIONS_WORKER_RUNTIME_VERSION.
var dotnetVersion = '10.0'
// The A100 profile comes with 24 vCPUs and 220 GiB per replica, the T4 profile with 8 and 56 GiB.
var workerCpu = (gpuProfileType == 'Consumption-GPU-NC24-A100') ? 24 : 8
var workerMemory = (gpuProfileType == 'Consumption-GPU-NC24-A100') ? '220Gi' : '56Gi'
var deployWorker = !empty(workerImage)
// An Entra worker without an audience would accept no token (or, worse, any audience): refuse it.
var checkedEntraAudience = (workerAuth != 'entra' || !empty(workerEntraAudience))
  ? workerEntraAudience
  : fail('workerAuth=entra needs workerEntraAudience: the application ID URI or client ID that callers request tokens for')

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    location: location
    name: names.identity
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: names.storage
    skuName: storageSkuName
    deploymentContainerName: names.deploymentContainer
    workspaceName: names.workspace
    tags: allTags
  }
  dependsOn: [
    monitoring
  ]
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    name: names.registry
    zoneRedundant: zoneRedundant
    tags: allTags
  }
}

module keyVault 'modules/keyVault.bicep' = {
  name: 'keyVault'
  params: {
    location: location
    name: names.keyVault
    purgeProtection: keyVaultPurgeProtection
    workspaceName: names.workspace
    tags: allTags
  }
  dependsOn: [
    monitoring
  ]
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    identityName: names.identity
    storageAccountName: names.storage
    appInsightsName: names.appInsights
    registryName: names.registry
    keyVaultName: names.keyVault
  }
  dependsOn: [
    identity
    storage
    monitoring
    registry
    keyVault
  ]
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  params: {
    location: location
    planName: names.plan
    name: names.functionApp
    identityName: names.identity
    storageAccountName: names.storage
    deploymentContainerName: names.deploymentContainer
    appInsightsName: names.appInsights
    dotnetVersion: dotnetVersion
    maxModelBytes: maxModelBytes
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    zoneRedundant: zoneRedundant
    tags: allTags
  }
  // The host starts as soon as the app exists: it needs its storage roles first.
  dependsOn: [
    roles
  ]
}

module containerEnvironment 'modules/containerEnvironment.bicep' = {
  name: 'containerEnvironment'
  params: {
    location: location
    name: names.containerEnvironment
    gpuProfileType: gpuProfileType
    workspaceName: names.workspace
    tags: allTags
  }
  dependsOn: [
    monitoring
  ]
}

module worker 'modules/workerApp.bicep' = if (deployWorker) {
  name: 'worker'
  params: {
    location: location
    name: names.worker
    environmentName: names.containerEnvironment
    workloadProfileName: containerEnvironment.outputs.gpuProfileName
    image: workerImage
    registryName: names.registry
    identityName: names.identity
    storageAccountName: names.storage
    appInsightsName: names.appInsights
    keyVaultName: names.keyVault
    maxModelBytes: maxModelBytes
    auth: workerAuth
    entraAudience: checkedEntraAudience
    entraTenantId: workerEntraTenantId
    cpu: workerCpu
    memory: workerMemory
    minReplicas: workerMinReplicas
    maxReplicas: workerMaxReplicas
    allowedIpRanges: workerAllowedIpRanges
    extraEnv: workerExtraEnv
    tags: allTags
  }
  // The first image pull already needs AcrPull, and the key secret needs Key Vault Secrets User.
  dependsOn: [
    roles
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    namePrefix: baseName
    workspaceName: names.workspace
    alertEmail: alertEmail
    errorRatePercent: workerErrorRateAlertPercent
    latencyMs: workerLatencyAlertMs
    minimumRequests: alertMinimumRequests
    tags: allTags
  }
  dependsOn: [
    monitoring
  ]
}

output resourceGroupName string = resourceGroup().name
output identityClientId string = identity.outputs.clientId
output storageAccountName string = names.storage
output blobEndpoint string = storage.outputs.blobEndpoint
output tableEndpoint string = storage.outputs.tableEndpoint
output eventGridSystemTopicName string = storage.outputs.eventGridSystemTopicName
output functionAppName string = names.functionApp
output functionAppUrl string = 'https://${functionApp.outputs.defaultHostName}'
output registryName string = names.registry
output registryLoginServer string = registry.outputs.loginServer
output keyVaultName string = names.keyVault
output containerAppsEnvironmentName string = names.containerEnvironment
output workerName string = deployWorker ? names.worker : ''
output workerUrl string = deployWorker ? worker!.outputs.url : ''
output appInsightsName string = names.appInsights
output logAnalyticsWorkspaceName string = names.workspace
