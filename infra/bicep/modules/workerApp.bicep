// The inference worker (Lepton.GpuWorker from docker/worker.gpu.Dockerfile: Open Inference Protocol
// over HTTP on LEPTON_WORKER_PORT and gRPC on LEPTON_WORKER_GRPC_PORT) as a Container App on the
// environment's serverless GPU profile. It pulls its image, reads its API keys from Key Vault and
// reaches storage and Application Insights as the shared managed identity; the probes hit the
// worker's own health routes; the HTTP rule scales replicas on concurrent requests. Ingress is
// internal to the environment unless an IP allowlist is given: the worker is never open to the
// internet by accident, and callers authenticate (LEPTON_WORKER_AUTH) on top of that.

@description('Azure region for the app.')
param location string

@description('Name of the Container App.')
param name string

@description('Name of the Container Apps environment.')
param environmentName string

@description('Workload profile the worker runs on (the GPU profile).')
param workloadProfileName string

@description('Worker image, e.g. <registry>.azurecr.io/lepton-worker:<tag>.')
param image string

@description('Registry the image is pulled from.')
param registryName string

@description('Name of the user-assigned managed identity the worker runs as.')
param identityName string

@description('Storage account with the registry tables and the models container.')
param storageAccountName string

@description('Application Insights component that receives the telemetry.')
param appInsightsName string

@description('Key Vault holding the secret worker-api-keys (used when auth is key).')
param keyVaultName string

@description('Largest model file a worker loads, in bytes (LEPTON_MAX_MODEL_BYTES).')
@minValue(1)
param maxModelBytes int

@description('LEPTON_WORKER_AUTH: key (API keys from Key Vault), entra (Entra ID tokens) or none.')
@allowed([
  'key'
  'entra'
  'none'
])
param auth string = 'key'

@description('With auth=entra: the audience tokens must carry.')
param entraAudience string = ''

@description('With auth=entra: the tenant that issues the tokens.')
param entraTenantId string = ''

@description('Port the worker serves HTTP on (LEPTON_WORKER_PORT).')
param port int = 8000

@description('Port the worker serves gRPC on (LEPTON_WORKER_GRPC_PORT), reachable inside the environment.')
param grpcPort int = 8001

@description('vCPUs per replica; a serverless GPU gets a fixed share (8 for T4, 24 for A100).')
@allowed([
  8
  24
])
param cpu int = 8

@description('Memory per replica (56Gi for T4, 220Gi for A100).')
@allowed([
  '56Gi'
  '220Gi'
])
param memory string = '56Gi'

@description('Fewest replicas; keep at least 1 so a canary always finds a warm worker.')
@minValue(0)
@maxValue(300)
param minReplicas int = 1

@description('Most replicas.')
@minValue(1)
@maxValue(300)
param maxReplicas int = 4

@description('Concurrent requests per replica before the HTTP rule adds a replica.')
@minValue(1)
param concurrentRequestsPerReplica int = 64

@description('CIDR ranges allowed to call the worker from outside the environment; empty keeps ingress internal.')
param allowedIpRanges string[] = []

@description('Extra environment variables for the worker.')
param extraEnv environmentVariable[] = []

@description('Tags applied to every resource.')
param tags object

@description('A container environment variable with a plain value.')
type environmentVariable = {
  name: string
  value: string
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' existing = {
  name: environmentName
}

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' existing = {
  name: registryName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' existing = {
  name: identityName
}

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2025-05-01' existing = {
  name: keyVaultName
}

// Public ingress only together with an allowlist, so a forgotten parameter cannot open the worker.
var exposeOutsideEnvironment = !empty(allowedIpRanges)
// Container Apps secret holding the API keys, filled from Key Vault by the platform.
var apiKeysSecret = 'worker-api-keys'

var baseEnv = [
  {
    // The worker defaults to loopback (safe on a laptop); in the container, ingress and the
    // probes reach it on the replica's address, so it must listen on every interface.
    name: 'LEPTON_WORKER_HOST'
    value: '0.0.0.0'
  }
  {
    name: 'LEPTON_WORKER_PORT'
    value: string(port)
  }
  {
    name: 'LEPTON_WORKER_GRPC_PORT'
    value: string(grpcPort)
  }
  {
    name: 'LEPTON_WORKER_AUTH'
    value: auth
  }
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
    value: storage.properties.primaryEndpoints.blob
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: storage.properties.primaryEndpoints.table
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    // Azure.Identity's DefaultAzureCredential (e.g. for the Azure Monitor exporter) picks the
    // user-assigned identity by this; the app has no system-assigned one.
    name: 'AZURE_CLIENT_ID'
    value: identity.properties.clientId
  }
  {
    name: 'LEPTON_MAX_MODEL_BYTES'
    value: string(maxModelBytes)
  }
]

var authEnv = {
  key: [
    {
      name: 'LEPTON_WORKER_API_KEYS'
      secretRef: apiKeysSecret
    }
  ]
  entra: [
    {
      name: 'LEPTON_WORKER_ENTRA_TENANT_ID'
      value: entraTenantId
    }
    {
      name: 'LEPTON_WORKER_ENTRA_AUDIENCE'
      value: entraAudience
    }
  ]
  none: []
}

resource worker 'Microsoft.App/containerApps@2025-01-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: workloadProfileName
    configuration: {
      // One revision at a time: Lepton shifts traffic between model versions inside the worker.
      activeRevisionsMode: 'Single'
      ingress: {
        external: exposeOutsideEnvironment
        targetPort: port
        transport: 'http'
        allowInsecure: false
        ipSecurityRestrictions: [
          for (range, i) in allowedIpRanges: {
            name: 'allow-${i}'
            description: 'Caller allowed by the allowedIpRanges parameter'
            ipAddressRange: range
            action: 'Allow'
          }
        ]
        // gRPC (Triton's GRPCInferenceService) on its own port, only inside the environment.
        additionalPortMappings: [
          {
            external: false
            targetPort: grpcPort
            exposedPort: grpcPort
          }
        ]
      }
      registries: [
        {
          server: registry.properties.loginServer
          identity: identity.id
        }
      ]
      // A Key Vault reference, resolved by the platform as the identity: no key in the template.
      secrets: auth == 'key'
        ? [
            {
              name: apiKeysSecret
              keyVaultUrl: '${vault.properties.vaultUri}secrets/${apiKeysSecret}'
              identity: identity.id
            }
          ]
        : []
    }
    template: {
      // Time for in-flight batches to finish when a replica is drained (the worker drains on SIGTERM).
      terminationGracePeriodSeconds: 60
      containers: [
        {
          name: 'worker'
          image: image
          resources: {
            cpu: cpu
            memory: memory
          }
          env: concat(baseEnv, authEnv[auth], extraEnv)
          probes: [
            {
              // CUDA initialisation and the first model loads take a while; liveness starts
              // counting only after this. Container Apps caps failureThreshold at 10 and
              // initialDelaySeconds at 60.
              type: 'Startup'
              httpGet: {
                path: '/v2/health/live'
                port: port
              }
              initialDelaySeconds: 10
              periodSeconds: 15
              failureThreshold: 10
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/v2/health/live'
                port: port
              }
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              // Ready only once the versions it must serve are loaded and warm.
              type: 'Readiness'
              httpGet: {
                path: '/v2/health/ready'
                port: port
              }
              periodSeconds: 5
              failureThreshold: 3
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http-concurrency'
            http: {
              metadata: {
                concurrentRequests: string(concurrentRequestsPerReplica)
              }
            }
          }
        ]
      }
    }
  }
}

output url string = 'https://${worker.properties.configuration.ingress.fqdn}'
