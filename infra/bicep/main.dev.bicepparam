// A development deployment: locally redundant storage, no availability zones, no purge protection
// (the vault can be deleted and its name reused at once), a small worker pool. The first
// deployment leaves workerImage empty; README.md's step 3 passes the pushed image.
using 'main.bicep'

param namePrefix = 'lepton'
param environmentName = 'dev'
param storageSkuName = 'Standard_LRS'
param zoneRedundant = false
param keyVaultPurgeProtection = false
param gpuProfileType = 'Consumption-GPU-NC8as-T4'
param workerImage = ''
param workerMinReplicas = 1
param workerMaxReplicas = 2
param workerAuth = 'key'
param functionMaximumInstanceCount = 40
param tags = {
  owner: 'lepton-dev'
}
