# Upper bounds (LinearSVC decision scores, OvR macro AUROC) of text encoders on openi-5class (seed 0).
# python benchmarks/ub_standins_text.py standin-text-mesh standin-text-tfidf wordllama-256 minilm-l6
import time, numpy as np, torch, sys
torch.set_num_threads(2)
from semalign.data import get_task
from semalign.encoders import get_encoder
from sklearn.svm import LinearSVC
from sklearn.metrics import roc_auc_score
def auroc(Xtr,ytr,Xte,yte):
    clf=LinearSVC().fit(Xtr,ytr); s=clf.decision_function(Xte)
    yte=np.asarray(yte,dtype=object); Y=(yte[:,None]==clf.classes_[None]).astype(int)
    return roc_auc_score(Y,s,average='macro')
names=sys.argv[1:]
for seed in [0]:
    t=get_task('openi-5class', seed=seed)
    for n in names:
        t0=time.time(); e=get_encoder(n, device='cpu'); t1=time.time()
        a=auroc(e.embed(list(t.train.input),progress=False),t.train.label.values,e.embed(list(t.test.input),progress=False),t.test.label.values)
        print(n, seed, round(a,3), f'fit {t1-t0:.1f}s total {time.time()-t0:.1f}s', flush=True)
