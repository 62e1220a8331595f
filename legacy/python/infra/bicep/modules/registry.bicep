// Azure Container Registry for the worker image. Admin user and anonymous pull are off: the worker
// pulls with the managed identity (AcrPull, granted in roles.bicep) and `az acr build` pushes with
// the operator's Entra ID token.

@description('Azure region for the registry.')
param location string

@description('Globally unique registry name (5-50 letters and digits).')
@minLength(5)
@maxLength(50)
param name string

@description('Replicate across availability zones (needs a region with zones).')
param zoneRedundant bool = true

@description('Tags applied to every resource.')
param tags object

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_139: `az acr build` agents and the Container Apps consumption pull reach the registry over its public endpoint; admin user and anonymous pull are off, so every pull needs AcrPull.
  // checkov:skip=CKV_AZURE_166: quarantine holds every image until a scanner releases it; without Defender for Containers wired to release images, the worker could never pull.
  name: name
  location: location
  tags: tags
  sku: {
    // Premium for the retention policy, dedicated data endpoints and zone redundancy below.
    name: 'Premium'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
    networkRuleBypassOptions: 'AzureServices'
    zoneRedundancy: zoneRedundant ? 'Enabled' : 'Disabled'
    dataEndpointEnabled: true
    policies: {
      quarantinePolicy: {
        status: 'disabled'
      }
      retentionPolicy: {
        status: 'enabled'
        days: 30
      }
      trustPolicy: {
        type: 'Notary'
        status: 'disabled'
      }
      exportPolicy: {
        status: 'enabled'
      }
    }
  }
}

output id string = registry.id
output name string = registry.name
output loginServer string = registry.properties.loginServer
