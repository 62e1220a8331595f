// Lepton on Azure, one resource group: storage (models, datasets, reports, registry tables, Event
// Grid system topic), a Flex Consumption Function App for the control plane, a Container Apps
// environment with a serverless GPU profile for the inference workers, a container registry, Log
// Analytics + Application Insights, and one user-assigned managed identity that every part uses
// (no keys or SAS anywhere). See README.md for the deployment steps, including the post-deploy
// Event Grid subscription that needs the deployed function's blobs_extension key.

targetScope = 'resourceGroup'

@description('Azure region. Pick one with serverless GPUs in Container Apps (see README.md).')
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
param workerAllowedIpRanges array = []

@description('Extra worker environment variables, as [{ name: ..., value: ... }].')
param workerExtraEnv array = []

@description('Tags applied to every resource.')
param tags object = {}

var suffix = uniqueString(resourceGroup().id, namePrefix, environmentName)
// Container Apps names must be lowercase.
var baseName = toLower('${namePrefix}-${environmentName}')
var allTags = union(tags, {
  application: 'lepton'
  environment: environmentName
})
// Short enough for every Functions naming limit, unique enough for a global host name.
var functionAppName = '${baseName}-func-${take(suffix, 6)}'
var deploymentContainerName = 'app-package-${take(suffix, 8)}'
// The A100 profile comes with 24 vCPUs and 220 GiB per replica, the T4 profile with 8 and 56 GiB.
var workerCpu = (gpuProfileType == 'Consumption-GPU-NC24-A100') ? 24 : 8
var workerMemory = (gpuProfileType == 'Consumption-GPU-NC24-A100') ? '220Gi' : '56Gi'
var deployWorker = !empty(workerImage)

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    location: location
    name: '${baseName}-id'
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    workspaceName: '${baseName}-logs'
    appInsightsName: '${baseName}-appi'
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: take('st${toLower(namePrefix)}${suffix}', 24)
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    workspaceId: monitoring.outputs.workspaceId
    tags: allTags
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    name: take('cr${toLower(namePrefix)}${suffix}', 50)
    zoneRedundant: zoneRedundant
    tags: allTags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    registryName: registry.outputs.name
  }
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  params: {
    location: location
    planName: '${baseName}-plan'
    name: functionAppName
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maxModelBytes: maxModelBytes
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    zoneRedundant: zoneRedundant
    tags: allTags
  }
  // The host starts as soon as the app exists; give it its storage roles first.
  dependsOn: [
    roles
  ]
}

module containerEnvironment 'modules/containerEnvironment.bicep' = {
  name: 'containerEnvironment'
  params: {
    location: location
    name: '${baseName}-cae'
    gpuProfileType: gpuProfileType
    workspaceId: monitoring.outputs.workspaceId
    tags: allTags
  }
}

module worker 'modules/workerApp.bicep' = if (deployWorker) {
  name: 'worker'
  params: {
    location: location
    name: '${baseName}-worker'
    environmentId: containerEnvironment.outputs.id
    workloadProfileName: containerEnvironment.outputs.gpuProfileName
    image: workerImage
    registryLoginServer: registry.outputs.loginServer
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maxModelBytes: maxModelBytes
    cpu: workerCpu
    memory: workerMemory
    minReplicas: workerMinReplicas
    maxReplicas: workerMaxReplicas
    allowedIpRanges: workerAllowedIpRanges
    extraEnv: workerExtraEnv
    tags: allTags
  }
  // The first image pull already needs AcrPull.
  dependsOn: [
    roles
  ]
}

output resourceGroupName string = resourceGroup().name
output identityClientId string = identity.outputs.clientId
output storageAccountName string = storage.outputs.name
output blobEndpoint string = storage.outputs.blobEndpoint
output tableEndpoint string = storage.outputs.tableEndpoint
output eventGridSystemTopicName string = storage.outputs.eventGridSystemTopicName
output functionAppName string = functionApp.outputs.name
output functionAppUrl string = 'https://${functionApp.outputs.defaultHostName}'
output registryName string = registry.outputs.name
output registryLoginServer string = registry.outputs.loginServer
output containerAppsEnvironmentName string = containerEnvironment.outputs.name
output workerUrl string = deployWorker ? worker.outputs.url : ''
output appInsightsName string = monitoring.outputs.appInsightsName
output logAnalyticsWorkspaceName string = monitoring.outputs.workspaceName
