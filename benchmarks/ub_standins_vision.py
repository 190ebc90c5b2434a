# Upper bounds (LinearSVC decision scores, StandardScaler, AUROC) of the vision encoders on SynthCXR tasks.
# python benchmarks/ub_standins_vision.py standin-vision-synthcxr,efficientnet-lite0,mobilenet-v2 synthcxr-pneumonia,...
# upper bounds on SynthCXR tasks: general CNNs vs the stand-in CNN, LinearSVC decision scores
import time, numpy as np, torch, sys
torch.set_num_threads(2)
from semalign.data import get_task
from semalign.encoders import get_encoder
from sklearn.svm import LinearSVC
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
tasks=sys.argv[2].split(',')
names=sys.argv[1].split(',')
encs={}
for n in names:
    t0=time.time(); encs[n]=get_encoder(n, device='cpu'); print('built',n,f'{time.time()-t0:.0f}s',flush=True)
for tn in tasks:
    t=get_task(tn)
    for n,e in encs.items():
        t0=time.time()
        Xtr=e.embed(list(t.train.input),progress=False); Xte=e.embed(list(t.test.input),progress=False)
        sc=StandardScaler().fit(Xtr)
        clf=LinearSVC(max_iter=5000).fit(sc.transform(Xtr),t.train.label.values)
        print(tn, n, round(roc_auc_score(t.test.label.values, clf.decision_function(sc.transform(Xte))),3), f'{time.time()-t0:.0f}s', flush=True)
